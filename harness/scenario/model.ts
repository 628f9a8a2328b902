import { z } from 'zod';
import { durationSchema } from '../../simulators/common/duration.js';
import { adapterFor, listAdapters } from '../adapters/index.js';
import { dnsFaultSpecSchema } from '../faults/dns.js';
import { LINK_TOXIC_TYPES, linkHosts, toxicSpecSchema } from '../faults/spec.js';
import { FAILURE_CLASS_NAMES, type FailureClass } from '../probe/classes.js';
import {
  bandwidthSchema,
  firewallRuleSchema,
  hostSchema as netnsHostSchema,
  routeSchema,
  segmentSchema,
  wireguardSchema,
} from '../topology/netns/model.js';

/**
 * The scenario model. YAML files are validated against it (and `scenarios/schema.json` is generated
 * from it); TypeScript scenarios use the same types through `defineScenario`.
 *
 *   scenario ── lab ── hosts, simulators (type + host + port + options)
 *            ├─ client (command | probe)          what runs, with ${...} references into the lab
 *            └─ variants[] ── faults, overrides, expect
 */

const slug = z.string().regex(/^[a-z0-9][a-z0-9-]*$/, 'use lower-case letters, digits and dashes');
const dnsName = z
  .string()
  .regex(
    /^(?=.{1,253}$)([a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)(\.[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?)*$/,
    'not a DNS name (lower case)',
  );

export const BACKENDS = ['loopback', 'netns', 'container'] as const;
export type Backend = (typeof BACKENDS)[number];

export const hostSchema = z
  .object({
    /** The host's DNS name in the lab; it gets its own address. */
    name: dnsName,
    description: z.string().optional(),
  })
  .strict();

export const simulatorSchema = z
  .object({
    /** Name used in references: `${api.url}`, fault targets, events. */
    name: slug,
    /** A simulator type (`fieldlab list --simulators`). */
    type: z.string(),
    /** The lab host it runs on (declared in `lab.hosts` or implied here). */
    host: dnsName,
    /** Public port of its main endpoint; 0 or absent picks a free one. */
    port: z.number().int().min(0).max(65535).optional(),
    /** Public ports of other endpoints by name, e.g. `{ amqps: 5671, mqtts: 8883 }` (each host has its own address). */
    ports: z.record(z.string(), z.number().int().min(0).max(65535)).default({}),
    /** Options of that simulator type (see the README). */
    options: z.record(z.string(), z.unknown()).default({}),
  })
  .strict();

/**
 * The kernel network of the netns backend: segments (a bridge each) and hosts (a namespace each) with
 * addresses, routes, nftables firewalls, WireGuard and bandwidth. Simulators run on the host whose
 * `names` include their `host`; the client runs on `client.host`.
 */
export const networkHostSchema = netnsHostSchema.extend({
  /** DNS names that resolve to this host's first address inside the lab (a simulator's `host`). */
  names: z.array(dnsName).default([]),
});

export const networkSchema = z.strictObject({
  segments: z.array(segmentSchema).min(1),
  hosts: z.array(networkHostSchema).min(1),
});

/** A variant's changes to network hosts, by host name: each given field replaces the host's own. */
export const networkPatchSchema = z.record(
  z.string(),
  z.strictObject({
    firewall: z.array(firewallRuleSchema).optional(),
    routes: z.array(routeSchema).optional(),
    wireguard: wireguardSchema.optional(),
    bandwidth: z.array(bandwidthSchema).optional(),
  }),
);

export const faultSchema = z
  .intersection(
    z.object({
      /**
       * Simulator name, or `name.endpoint` for another endpoint than its main one; or, on the netns
       * backend, the link between two network hosts: `proxy~hub` (upstream = proxy → hub).
       */
      target: z
        .string()
        .regex(
          /^([a-z0-9][a-z0-9-]*(\.[a-z0-9-]+)?|[a-z][a-z0-9-]{0,19}~[a-z][a-z0-9-]{0,19})$/,
          'a simulator (`hub`), an endpoint (`hub.amqps`) or a link between two network hosts (`proxy~hub`)',
        ),
      /**
       * Backends it applies on (default all): e.g. a `refuse` that stands in on loopback for the
       * firewall rule the variant's `network` sets on netns.
       */
      backends: z.array(z.enum(BACKENDS)).min(1).optional(),
    }),
    // A relay toxic on a TCP endpoint, or a DNS fault on a geo-dns/resolver (optionally one name/type).
    z.union([toxicSpecSchema, dnsFaultSpecSchema]),
  )
  .superRefine((f, ctx) => {
    if (!linkHosts(f.target)) return;
    // A link between two namespaces exists only on netns: elsewhere the fault would silently not apply.
    if (!f.backends || f.backends.some((b) => b !== 'netns')) {
      ctx.addIssue({
        code: 'custom',
        path: ['backends'],
        message: `${f.target} is a link between two network hosts, which only the netns backend has: add \`backends: [netns]\` to this fault`,
      });
    }
    if (!(LINK_TOXIC_TYPES as readonly string[]).includes(f.type)) {
      ctx.addIssue({
        code: 'custom',
        path: ['type'],
        message: `${f.type} has no kernel equivalent on a link (${f.target}); a link takes ${LINK_TOXIC_TYPES.join(', ')}, or put ${f.type} on a simulator's relay (target: <simulator>)`,
      });
    }
  });

const commandClientSchema = z
  .object({
    type: z.literal('command'),
    /** The program and its arguments; `${...}` references are filled in from the lab. */
    argv: z.array(z.string()).min(1),
    env: z.record(z.string(), z.string()).default({}),
    cwd: z.string().optional(),
    stdin: z.string().optional(),
    /** `lab`: run in a private namespace where lab names resolve (hosts file); `none`: as is. */
    resolve: z.enum(['lab', 'none']).default('lab'),
    /**
     * With `resolve: lab`: the resolver simulator (on port 53) that the client's resolv.conf names, in
     * place of the lab's own DNS: the device's ISP, office or public resolver. A variant may pick another.
     */
    resolver: z.string().optional(),
    /** netns backend: the network host it runs on (`ip netns exec`); default the host named `device`. */
    host: z.string().optional(),
    /**
     * How to read the outcome: by the program (`curl`, `dig`), or `exit-code` only. `auto` picks by
     * argv[0] and otherwise reads the failure names the program printed (ECONNREFUSED, unable to get
     * local issuer certificate...), refined by what the lab saw.
     */
    classify: z.enum(['auto', 'curl', 'dig', 'exit-code']).default('auto'),
    timeout: durationSchema.optional(),
  })
  .strict();

const probeClientSchema = z
  .object({
    type: z.literal('probe'),
    /** HTTPS URL to fetch with the built-in Node probe (full phase timings). */
    url: z.string(),
    /** HTTP proxy URL (`http://user:pass@host:port`). */
    proxy: z.string().optional(),
    /** Which roots the probe trusts: the lab's, none but the system's, or PEM files. */
    trust: z.union([z.enum(['lab', 'system']), z.array(z.string())]).default('lab'),
    timeout: durationSchema.optional(),
  })
  .strict();

export const clientSchema = z.discriminatedUnion('type', [commandClientSchema, probeClientSchema]);

/** Fields a variant may change in the client: replace argv, add env, change resolver, timeout, url, proxy, trust. */
export const clientOverrideSchema = z
  .object({
    argv: z.array(z.string()).min(1).optional(),
    env: z.record(z.string(), z.string()).optional(),
    resolver: z.string().optional(),
    url: z.string().optional(),
    proxy: z.string().optional(),
    trust: z.union([z.enum(['lab', 'system']), z.array(z.string())]).optional(),
    timeout: durationSchema.optional(),
  })
  .strict();

const failureClassSchema = z.enum(FAILURE_CLASS_NAMES as [FailureClass, ...FailureClass[]]);

export const labSawSchema = z
  .object({
    /** The simulator (or `<sim>-relay` for its relay) that must have seen it. */
    source: z.string(),
    type: z.string(),
    /** Fields the event's data must have (equal values). */
    match: z.record(z.string(), z.unknown()).optional(),
  })
  .strict();

const regexSchema = z.string().refine((r) => {
  try {
    new RegExp(r, 'm');
    return true;
  } catch {
    return false;
  }
}, 'not a valid regular expression');

export const expectSchema = z.union([
  z.literal('pass').transform(() => ({ result: 'pass' as const, labSaw: [], labNeverSaw: [] })),
  z
    .object({
      result: z.enum(['pass', 'fail']),
      /** With `fail`: the failure class the client must fail with. */
      class: failureClassSchema.optional(),
      /** The client must finish within this time. */
      within: durationSchema.optional(),
      /** The client must take at least this long (e.g. a timeout really waited). */
      atLeast: durationSchema.optional(),
      /** Events the lab must have recorded (e.g. the proxy logged the 403). */
      labSaw: z.array(labSawSchema).default([]),
      /** Events the lab must not have recorded (e.g. the device registered in the other region). */
      labNeverSaw: z.array(labSawSchema).default([]),
      /** A regular expression the client's standard output must match (e.g. the answer it got). */
      output: regexSchema.optional(),
      /** A regular expression one line of the report's explanation must match (the lab says why). */
      explains: regexSchema.optional(),
    })
    .strict()
    .superRefine((v, ctx) => {
      if (v.result === 'fail' && !v.class) {
        ctx.addIssue({
          code: 'custom',
          path: ['class'],
          message: 'a `fail` expectation names its failure class',
        });
      }
      if (v.result === 'pass' && v.class) {
        ctx.addIssue({
          code: 'custom',
          path: ['class'],
          message: 'a `pass` expectation has no failure class',
        });
      }
    }),
]);

/** Built-in workloads of the Node load driver (harness/load/workloads/). */
export const NODE_WORKLOADS = ['tunnel-streams', 'mqtt-fleet'] as const;

const loadFields = {
  /**
   * `node`: a built-in workload run by the harness (`tunnel-streams`, `mqtt-fleet`); `k6`: a k6 script
   * from `load/` (e.g. `tunnel-throughput.js`), run by k6 with the thresholds below.
   */
  driver: z.enum(['node', 'k6']),
  /** The workload (node) or the script file in `load/` (k6). */
  script: z.string().min(1),
  /** Virtual users: streams, devices, k6 VUs. `FIELDLAB_LOAD_SCALE` (e.g. 0.2 in CI) scales it. */
  vus: z.number().int().min(1).max(100_000),
  /** How long the load runs (k6 duration). Without it, until `iterations` are done. */
  duration: durationSchema,
  /** Total iterations shared by the VUs (k6 shared-iterations); with `duration`, whichever ends first. */
  iterations: z.number().int().min(1).max(10_000_000),
  /** VUs start spread evenly over this time (a ramp from 0 to `vus`). */
  rampUp: durationSchema,
  /**
   * Workload settings (k6: `-e NAME=value`). `${...}` references resolve as the client's do, so the load
   * goes through the same relays, toxics and proxies as the variant's client.
   */
  options: z.record(z.string(), z.union([z.string(), z.number(), z.boolean()])),
  /** k6 thresholds by metric: `{ tunnel_open_ms: ['p(95)<2000'], errors: ['rate<0.01'] }`. */
  thresholds: z.record(z.string(), z.array(z.string()).min(1)),
};

/** A load declared by a scenario (for every variant) or a variant. */
export const loadSchema = z
  .object({
    ...loadFields,
    driver: loadFields.driver.default('node'),
    vus: loadFields.vus.default(1),
    iterations: loadFields.iterations.optional(),
    duration: loadFields.duration.optional(),
    rampUp: loadFields.rampUp.default(0),
    options: loadFields.options.default({}),
    thresholds: loadFields.thresholds.default({}),
  })
  .strict();

/** A variant's changes to the scenario's load: fields replace, `options` and `thresholds` merge by key. */
export const loadPatchSchema = z
  .object({
    driver: loadFields.driver.optional(),
    script: loadFields.script.optional(),
    vus: loadFields.vus.optional(),
    duration: loadFields.duration.optional(),
    iterations: loadFields.iterations.optional(),
    rampUp: loadFields.rampUp.optional(),
    options: loadFields.options.optional(),
    thresholds: loadFields.thresholds.optional(),
  })
  .strict();

export const variantSchema = z
  .object({
    /** `broken`, `fixed`, or either with a suffix: `broken-timeout`, `fixed-with-ca`. */
    name: z
      .string()
      .regex(
        /^(broken|fixed)(-[a-z0-9-]+)?$/,
        'variant names are broken, fixed, broken-<what> or fixed-<what>',
      ),
    description: z.string().optional(),
    /** Backends this variant runs on (default: all of the scenario's). */
    backends: z.array(z.enum(BACKENDS)).min(1).optional(),
    /** Toxics on simulator endpoints for this variant (userspace, on every backend). */
    faults: z.array(faultSchema).default([]),
    /** netns backend: changes to network hosts (firewall, routes, WireGuard, bandwidth). */
    network: networkPatchSchema.default({}),
    /** Option overrides per simulator name (merged into its options). */
    simulators: z.record(z.string(), z.record(z.string(), z.unknown())).default({}),
    client: clientOverrideSchema.optional(),
    /** A load for this variant, or changes to the scenario's (see `load` of the scenario). */
    load: loadPatchSchema.optional(),
    expect: expectSchema,
  })
  .strict();

export const scenarioSchema = z
  .object({
    $schema: z.string().optional(),
    name: slug,
    title: z.string().min(1),
    description: z.string().optional(),
    /** The field article or issue it reproduces. */
    seed: z.string().optional(),
    tags: z.array(z.string()).default([]),
    /**
     * Machine capabilities it needs: `userns`, `netns`, `root`, `dns53` (the lab DNS on port 53), `docker`,
     * `k6`, `tls-front` (fieldlab-tls-front built), `cmd:<program>`.
     */
    requires: z
      .array(z.string().regex(/^(userns|netns|root|dns53|docker|k6|tls-front|cmd:[A-Za-z0-9_.+-]+)$/))
      .default([]),
    /** Backends it can run on; the first is its default. */
    backends: z.array(z.enum(BACKENDS)).min(1).default(['loopback']),
    /** Default client timeout for every variant. */
    timeout: durationSchema.default(30_000),
    lab: z
      .object({
        hosts: z.array(hostSchema).default([]),
        simulators: z.array(simulatorSchema).min(1),
        /** The kernel network for the netns backend (ignored on loopback). */
        network: networkSchema.optional(),
      })
      .strict(),
    /** The client under test; a scenario with a `load` may leave it out (the load is its client). */
    client: clientSchema.optional(),
    /**
     * A load run in every variant's lab, after the client, while the variant's faults apply; its
     * thresholds decide pass/fail (a crossed one is the failure class `load.threshold`).
     */
    load: loadSchema.optional(),
    variants: z.array(variantSchema).min(2),
  })
  .strict()
  .superRefine((s, ctx) => {
    if (s.client) return;
    s.variants.forEach((v, i) => {
      if (s.load || v.load?.script) return;
      ctx.addIssue({
        code: 'custom',
        path: ['variants', i],
        message: 'this variant has neither a client nor a load: give the scenario a `client` or a `load`',
      });
    });
  });

export type ScenarioInput = z.input<typeof scenarioSchema>;
export type Scenario = z.output<typeof scenarioSchema>;
export type Variant = z.output<typeof variantSchema>;
export type SimulatorDecl = z.output<typeof simulatorSchema>;
export type ClientDecl = z.output<typeof clientSchema>;
export type Fault = z.output<typeof faultSchema>;
export type Network = z.output<typeof networkSchema>;
export type NetworkPatch = z.output<typeof networkPatchSchema>;
export type ExpectDecl = z.output<typeof expectSchema>;
export type LoadDecl = z.output<typeof loadSchema>;
export type LoadPatch = z.output<typeof loadPatchSchema>;

/** A variant's load: the scenario's with the variant's patch applied, or the variant's own. */
export function loadOf(s: Scenario, v: Variant): LoadDecl | undefined {
  const base = s.load;
  const p = v.load;
  if (!base && !p) return undefined;
  if (!base) return loadSchema.parse(p);
  if (!p) return base;
  return {
    ...base,
    ...Object.fromEntries(Object.entries(p).filter(([, x]) => x !== undefined)),
    options: { ...base.options, ...p.options },
    thresholds: { ...base.thresholds, ...p.thresholds },
  };
}

/** The network host the client runs on (netns backend): `client.host`, default `device`. */
export function clientHostOf(s: Scenario): string {
  return (s.client?.type === 'command' ? s.client.host : undefined) ?? 'device';
}

/** The network host a lab name lives on: its own name or one of its `names`. */
export function networkHostNamed(network: Network, name: string): Network['hosts'][number] | undefined {
  return network.hosts.find((h) => h.name === name || h.names.includes(name));
}

/** The network's hosts with a variant's patch applied. */
export function patchedHosts(network: Network, patch: NetworkPatch): Network['hosts'] {
  return network.hosts.map((h) => ({ ...h, ...(patch[h.name] ?? {}) }));
}

/** The typed TypeScript API: returns its argument, checked by the compiler against the model. */
export function defineScenario(s: ScenarioInput): ScenarioInput {
  return s;
}

/**
 * The published JSON Schema of scenario files (input form: durations as strings or numbers). Each
 * simulator type gets its own `options` schema, so editors complete and check them too.
 */
export function scenarioJsonSchema(): Record<string, unknown> {
  const schema = z.toJSONSchema(scenarioSchema, { io: 'input', unrepresentable: 'any' }) as JsonObject;
  const sims = ((schema.properties as JsonObject).lab as JsonObject).properties as JsonObject;
  const item = (sims.simulators as JsonObject).items as JsonObject;
  const { properties, ...rest } = item;
  (sims.simulators as JsonObject).items = {
    oneOf: listAdapters().map((a) => {
      const options = z.toJSONSchema(adapterFor(a.type)!.options, {
        io: 'input',
        unrepresentable: 'any',
      }) as JsonObject;
      delete options.$schema;
      return {
        ...rest,
        description: a.summary,
        properties: { ...(properties as JsonObject), type: { const: a.type }, options },
      };
    }),
  };
  const variant = ((schema.properties as JsonObject).variants as JsonObject).items as JsonObject;
  const faults = (variant.properties as JsonObject).faults as JsonObject;
  faults.items = flattenFault(faults.items as JsonObject);
  return {
    $id: 'urn:fieldlab:schema:scenario:1',
    title: 'fieldlab scenario',
    description:
      'A field network problem as a lab, a client and broken/fixed variants with expected outcomes.',
    ...schema,
  };
}

type JsonObject = Record<string, unknown>;

/**
 * A fault item as one strict object per type with `target`/`backends` merged in: zod writes the
 * intersection as allOf, where a standard validator rejects `target` under each spec's
 * `additionalProperties: false`.
 */
function flattenFault(item: JsonObject): JsonObject {
  const [place, specs] = (item.allOf ?? []) as JsonObject[];
  if (!place || !specs) return item;
  const leaves = (s: JsonObject): JsonObject[] => {
    const alts = (s.anyOf ?? s.oneOf) as JsonObject[] | undefined;
    return alts ? alts.flatMap(leaves) : [s];
  };
  return {
    oneOf: leaves(specs).map((spec) => ({
      ...spec,
      properties: { ...(place.properties as JsonObject), ...(spec.properties as JsonObject) },
      required: [...((place.required as string[]) ?? []), ...((spec.required as string[]) ?? [])],
    })),
  };
}
