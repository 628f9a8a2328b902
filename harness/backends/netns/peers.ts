import { FieldlabError } from '../../../simulators/common/errors.js';
import type { LabSimulator } from '../../lab/lab.js';

/**
 * The simulators an adapter reaches through `peer()` (their handles, in its own process), by the option
 * that names them: a DPS's hubs, Krypton's DPS, a tunnel service's notify broker, a resolver's forwarded
 * geo-dns. On the netns backend each worker process runs one network host's simulators, so peers must
 * share one.
 */
const PEER_OPTIONS: Record<string, (o: Record<string, unknown>) => unknown[]> = {
  dps: (o) => [o.hub, ...(Array.isArray(o.linkedHubs) ? o.linkedHubs : [])],
  krypton: (o) => [o.dps],
  'tunnel-service': (o) => [o.notify],
  resolver: (o) =>
    Array.isArray(o.forward)
      ? o.forward.flatMap((f: unknown) =>
          typeof f === 'object' && f !== null && 'to' in f && Array.isArray(f.to) ? f.to : [],
        )
      : [],
};

/** The lab simulators `decl` names as peers (names that are no simulator are the adapter's to refuse). */
export function peersOf(decl: LabSimulator, declared: ReadonlySet<string>): string[] {
  const named = PEER_OPTIONS[decl.type]?.(decl.options ?? {}) ?? [];
  return named.filter((n): n is string => typeof n === 'string' && declared.has(n) && n !== decl.name);
}

/**
 * The lab's simulators in worker groups: peers (transitively) in one group, in declaration order; every
 * other simulator alone. E_NETNS_PEERS when peers are placed on different network hosts: one process
 * cannot serve in two namespaces.
 */
export function workerGroups(
  simulators: readonly LabSimulator[],
  networkHostOf: (labHost: string) => string | undefined,
): LabSimulator[][] {
  const declared = new Set(simulators.map((s) => s.name));
  const group = new Map<string, string>(simulators.map((s) => [s.name, s.name]));
  const root = (n: string): string => {
    let r = n;
    while (group.get(r) !== r) r = group.get(r) ?? r;
    return r;
  };
  for (const s of simulators) {
    for (const p of peersOf(s, declared)) {
      const decl = simulators.find((x) => x.name === p);
      const mine = networkHostOf(s.host);
      const theirs = decl && networkHostOf(decl.host);
      if (decl && mine !== theirs) {
        throw new FieldlabError(
          'E_NETNS_PEERS',
          `${s.name} (${s.type}) works with ${p} (${decl.type}) in one process, but ${s.name} is on network host ${mine ?? s.host} and ${p} on ${theirs ?? decl.host}`,
          {
            hint: `on the netns backend put both on one host of lab.network: list ${s.host} and ${decl.host} in the names of the same host`,
          },
        );
      }
      group.set(root(s.name), root(p));
    }
  }
  const out = new Map<string, LabSimulator[]>();
  for (const s of simulators) {
    const r = root(s.name);
    out.set(r, [...(out.get(r) ?? []), s]);
  }
  return [...out.values()];
}
