import { adapterFor, adapterTypes } from '../adapters/index.js';
import { isDnsFault } from '../faults/dns.js';
import { linkHosts } from '../faults/spec.js';
import { clientHostOf, networkHostNamed, type Scenario } from './model.js';

/** Checks the schema cannot express: references between fields, the broken/fixed pairing. */
export interface SemanticIssue {
  path: PropertyKey[];
  message: string;
}

/** `${ref}`, but not the escaped `$${literal}`. */
const REF = /(?<!\$)\$\{([^}]*)\}/g;
const LAB_VARS = new Set(['ca', 'caDir', 'hosts', 'dir', 'resolv', 'root']);

/** Calls `visit` with every string inside a value (arrays and objects walked), and its path. */
export function forEachString(
  v: unknown,
  visit: (s: string, path: PropertyKey[]) => void,
  path: PropertyKey[] = [],
): void {
  if (typeof v === 'string') visit(v, path);
  else if (Array.isArray(v)) for (const [i, x] of v.entries()) forEachString(x, visit, [...path, i]);
  else if (v && typeof v === 'object')
    for (const [k, x] of Object.entries(v)) forEachString(x, visit, [...path, k]);
}

/** `${...}` references used in a string, as their inner text. */
export function referencesIn(s: string): string[] {
  return [...s.matchAll(REF)].map((m) => m[1] ?? '');
}

function valueAt(v: unknown, path: readonly PropertyKey[]): unknown {
  let cur = v;
  for (const k of path)
    cur = cur && typeof cur === 'object' ? (cur as Record<PropertyKey, unknown>)[k] : undefined;
  return cur;
}

function hasReference(v: unknown): boolean {
  return typeof v === 'string' && referencesIn(v).length > 0;
}

export function checkSemantics(s: Scenario): SemanticIssue[] {
  const issues: SemanticIssue[] = [];
  const sims = new Map<string, number>();
  s.lab.simulators.forEach((sim, i) => {
    if (sims.has(sim.name))
      issues.push({
        path: ['lab', 'simulators', i, 'name'],
        message: `duplicate simulator name ${sim.name}`,
      });
    if (sim.name === 'lab')
      issues.push({ path: ['lab', 'simulators', i, 'name'], message: '`lab` is reserved' });
    sims.set(sim.name, i);
  });
  const hostNames = new Set<string>();
  s.lab.hosts.forEach((h, i) => {
    if (hostNames.has(h.name))
      issues.push({ path: ['lab', 'hosts', i, 'name'], message: `duplicate host ${h.name}` });
    hostNames.add(h.name);
  });

  const checkRefs = (value: string, path: PropertyKey[]) => {
    for (const ref of referencesIn(value)) {
      const [head, field] = ref.split('.');
      if (head === 'lab') {
        if (field === 'host') continue; // ${lab.host.<name>}: checked against the lab's hosts at start
        if (!field || !LAB_VARS.has(field)) {
          issues.push({
            path,
            message: `unknown reference \${${ref}} (lab has: ${[...LAB_VARS].join(', ')})`,
          });
        }
      } else if (!head || !sims.has(head)) {
        issues.push({
          path,
          message: `\${${ref}} names no simulator (have: ${[...sims.keys()].join(', ')})`,
        });
      }
    }
  };
  forEachString(s.client, checkRefs, ['client']);
  const checkResolver = (resolver: string | undefined, path: PropertyKey[]) => {
    if (resolver === undefined) return;
    const onPort53 = s.lab.simulators.filter((x) => x.type === 'resolver' && x.port === 53);
    // resolv.conf takes an address, never a port: only a resolver on port 53 can be the client's.
    if (!onPort53.some((x) => x.name === resolver)) {
      const have = onPort53;
      issues.push({
        path,
        message: `client resolver ${resolver} is not a resolver simulator on port 53 (have: ${have.map((x) => x.name).join(', ') || 'none'}); declare one with type: resolver and port: 53`,
      });
    }
  };
  if (s.client?.type === 'command') {
    checkResolver(s.client.resolver, ['client', 'resolver']);
    const picks = s.client.resolver !== undefined || s.variants.some((v) => v.client?.resolver !== undefined);
    // `resolve: none` leaves the machine's resolv.conf in place: a picked resolver would never be asked.
    if (picks && s.client.resolve === 'none')
      issues.push({
        path: ['client', 'resolve'],
        message:
          "client.resolver needs resolve: lab (with resolve: none the client keeps the machine's resolv.conf)",
      });
  }
  for (const [i, v] of s.variants.entries())
    checkResolver(v.client?.resolver, ['variants', i, 'client', 'resolver']);
  // A load's options resolve like the client's references (its path through the lab).
  forEachString(s.load?.options, checkRefs, ['load', 'options']);
  for (const [i, v] of s.variants.entries())
    forEachString(v.load?.options, checkRefs, ['variants', i, 'load', 'options']);
  for (const [i, sim] of s.lab.simulators.entries())
    forEachString(sim.options, checkRefs, ['lab', 'simulators', i, 'options']);

  // Simulator types and their options, as each variant will start them.
  s.lab.simulators.forEach((sim, i) => {
    const adapter = adapterFor(sim.type);
    if (!adapter) {
      issues.push({
        path: ['lab', 'simulators', i, 'type'],
        message: `unknown simulator type ${sim.type} (known: ${adapterTypes().join(', ')})`,
      });
      return;
    }
    const check = (options: Record<string, unknown>, where: PropertyKey[]) => {
      const r = adapter.options.safeParse(options);
      if (r.success) return;
      // A field holding a `${...}` reference is only known when the lab starts: it is checked then.
      const bad = r.error.issues.filter((i) => !hasReference(valueAt(options, i.path)));
      for (const issue of bad.slice(0, 4))
        issues.push({ path: [...where, ...issue.path], message: issue.message });
    };
    check(sim.options, ['lab', 'simulators', i, 'options']);
    s.variants.forEach((v, j) => {
      const over = v.simulators[sim.name];
      if (over) check({ ...sim.options, ...over }, ['variants', j, 'simulators', sim.name]);
    });
  });

  let broken = 0;
  let fixed = 0;
  const variantNames = new Set<string>();
  s.variants.forEach((v, i) => {
    if (variantNames.has(v.name))
      issues.push({ path: ['variants', i, 'name'], message: `duplicate variant ${v.name}` });
    variantNames.add(v.name);
    if (v.name.startsWith('broken')) broken++;
    else fixed++;
    v.faults.forEach((f, j) => {
      const link = linkHosts(f.target);
      if (link) {
        // A link between two hosts of lab.network (netns): both must be there.
        const hosts = s.lab.network?.hosts.map((h) => h.name) ?? [];
        for (const h of link.filter((x) => !hosts.includes(x))) {
          issues.push({
            path: ['variants', i, 'faults', j, 'target'],
            message: `fault target ${f.target}: lab.network has no host ${h} (hosts: ${hosts.join(', ') || 'none'})`,
          });
        }
        return;
      }
      const sim = f.target.split('.')[0] ?? '';
      // The lab's own resolver (harness/lab/lab-dns.ts LAB_DNS_NAME) takes DNS faults where it runs.
      if (sim === 'lab-dns' && isDnsFault(f)) return;
      if (!sims.has(sim)) {
        issues.push({
          path: ['variants', i, 'faults', j, 'target'],
          message: `fault target ${f.target} names no simulator`,
        });
      }
    });
    for (const simName of Object.keys(v.simulators)) {
      if (!sims.has(simName))
        issues.push({ path: ['variants', i, 'simulators', simName], message: `no simulator ${simName}` });
    }
    forEachString(v.client, checkRefs, ['variants', i, 'client']);
    forEachString(v.simulators, checkRefs, ['variants', i, 'simulators']);
  });
  issues.push(...checkNetwork(s));
  if (broken === 0)
    issues.push({ path: ['variants'], message: 'a scenario needs at least one broken variant' });
  if (fixed === 0)
    issues.push({ path: ['variants'], message: 'a scenario needs at least one fixed variant' });
  return issues;
}

/** The netns backend's part: a network to run on, simulators and the client placed on its hosts. */
function checkNetwork(s: Scenario): SemanticIssue[] {
  const issues: SemanticIssue[] = [];
  s.variants.forEach((v, i) => {
    for (const b of v.backends ?? []) {
      if (!s.backends.includes(b))
        issues.push({
          path: ['variants', i, 'backends'],
          message: `${b} is not one of the scenario's backends (${s.backends.join(', ')})`,
        });
    }
  });
  if (s.backends.includes('container') && s.client && s.client.type !== 'command') {
    issues.push({
      path: ['client', 'type'],
      message: 'on the container backend the client is a command (it runs in a container of the lab)',
    });
  }
  const net = s.lab.network;
  if (!s.backends.includes('netns')) {
    if (net)
      issues.push({
        path: ['lab', 'network'],
        message: 'lab.network is for the netns backend: add netns to backends',
      });
    return issues;
  }
  if (!net) {
    issues.push({
      path: ['lab', 'network'],
      message: 'the netns backend needs lab.network (segments and hosts) to build the namespaces from',
    });
    return issues;
  }
  const hosts = new Set(net.hosts.map((h) => h.name));
  s.lab.simulators.forEach((sim, i) => {
    if (!networkHostNamed(net, sim.host))
      issues.push({
        path: ['lab', 'simulators', i, 'host'],
        message: `${sim.host} is on no lab.network host: add it to one host's names`,
      });
  });
  if (s.client && s.client.type !== 'command') {
    issues.push({
      path: ['client', 'type'],
      message: 'on the netns backend the client is a command (it runs inside its host namespace)',
    });
  } else {
    const host = clientHostOf(s);
    if (!hosts.has(host))
      issues.push({
        path: ['client', 'host'],
        message: `the client runs on network host ${host}, which lab.network does not have (hosts: ${[...hosts].join(', ')})`,
      });
  }
  s.variants.forEach((v, i) => {
    for (const name of Object.keys(v.network)) {
      if (!hosts.has(name))
        issues.push({ path: ['variants', i, 'network', name], message: `lab.network has no host ${name}` });
    }
  });
  return issues;
}
