/**
 * DNS faults as data, and the schedule that holds them for a DNS simulator (the authoritative geo-dns,
 * a resolver). The same specs come from a scenario's `faults:` (harness/faults/dns.ts), from
 * `fieldlab up` toggles and from a simulator's own `faults` option (sugar), and show on the timeline as
 * the relay's toxics do: `toxic-added`, `toxic-started`, `toxic-applied` (per query hit), `toxic-removed`.
 *
 *   spec ─► DnsFaultSet.add ─► (start) active ─► match(query) ─► the simulator applies it
 *                                  └ (duration) removed
 */
import { isIP } from 'node:net';
import { z } from 'zod';
import { durationSchema, formatMs } from './duration.js';
import { FieldlabError } from './errors.js';
import { formatPath } from './options.js';

const fqdn = z
  .string()
  .min(1)
  .regex(/^[A-Za-z0-9_*.-]+\.?$/, 'expected a domain name, e.g. global.iot.example.com');

/** Fields every DNS fault has; `name`, `start`, `duration` as the relay toxics. */
const common = {
  /** Unique per target; defaults to `<type>` or `<type>_<qname>`. */
  name: z
    .string()
    .regex(/^[a-zA-Z0-9_.-]+$/)
    .optional(),
  /** Only queries for this name (absolute; case-insensitive; a trailing dot is optional). */
  qname: fqdn.optional(),
  /** Only queries of this type (A, AAAA, CNAME, TXT, SRV, NS, SOA, ANY...). */
  qtype: z
    .string()
    .regex(/^[A-Za-z0-9]+$/)
    .transform((s) => s.toUpperCase())
    .optional(),
  /** Only clients (ECS subnet, else source address) inside this CIDR. */
  cidr: z
    .string()
    .refine((s) => isIP(s.split('/')[0] ?? '') !== 0, 'expected a CIDR, e.g. 198.51.100.0/24')
    .optional(),
  /** Start this long after the fault is added. */
  start: durationSchema.optional(),
  /** Stay active this long, then remove itself. */
  duration: durationSchema.optional(),
};

export const dnsFaultSpecSchema = z.discriminatedUnion('type', [
  /** Answer SERVFAIL (RCODE 2). */
  z.strictObject({ ...common, type: z.literal('servfail') }),
  /** Answer NXDOMAIN (RCODE 3) with the zone's SOA. */
  z.strictObject({ ...common, type: z.literal('nxdomain') }),
  /** Answer REFUSED (RCODE 5). */
  z.strictObject({ ...common, type: z.literal('refused') }),
  /** Never answer: the client times out. */
  z.strictObject({ ...common, type: z.literal('drop') }),
  /** Answer `latency` ± `jitter` late. */
  z.strictObject({
    ...common,
    type: z.literal('delay'),
    latency: durationSchema,
    jitter: durationSchema.default(0),
  }),
  /** Over UDP answer with TC set and no records (RFC 2181 §9), so the client retries over TCP. */
  z.strictObject({ ...common, type: z.literal('truncate') }),
  /** Refuse DNS over TCP connections (the kernel answers SYN with RST), e.g. a firewall on TCP 53. */
  z.strictObject({
    name: common.name,
    start: common.start,
    duration: common.duration,
    type: z.literal('tcp-refused'),
  }),
  /**
   * Answer from an old record set: the record `record` (a record id, or the region of a record at the
   * name), e.g. the region before a failover; with `ttl` the answers' TTL is replaced.
   */
  z.strictObject({
    ...common,
    type: z.literal('stale'),
    record: z.string().min(1).optional(),
    ttl: z.number().int().min(0).optional(),
  }),
  /** Answer this address (an A or AAAA record at the query name) instead of the real answer. */
  z.strictObject({
    ...common,
    type: z.literal('wrong-answer'),
    address: z.string().refine((s) => isIP(s) !== 0, 'expected an IPv4 or IPv6 address'),
    ttl: z.number().int().min(0).default(60),
  }),
]);

export type DnsFaultSpecInput = z.input<typeof dnsFaultSpecSchema>;
export type DnsFaultSpec = z.output<typeof dnsFaultSpecSchema> & { name: string };
export type DnsFaultType = DnsFaultSpec['type'];
export const DNS_FAULT_TYPES: readonly DnsFaultType[] = [
  'servfail',
  'nxdomain',
  'refused',
  'drop',
  'delay',
  'truncate',
  'tcp-refused',
  'stale',
  'wrong-answer',
];

/** What a DNS simulator offers the lab (and `fieldlab up`): faults added, removed, listed at run time. */
export interface DnsFaultTarget {
  /** Validates (E_BAD_FAULT naming the field), registers and schedules; E_FAULT_EXISTS on a dup name. */
  addDnsFault(spec: DnsFaultSpecInput): DnsFaultSpec;
  /** Removes a fault by name; E_NO_SUCH_FAULT when unknown. */
  removeDnsFault(name: string): void;
  /** Faults registered now (scheduled ones not yet started included). */
  dnsFaults(): DnsFaultSpec[];
}

/** Whether a simulator handle is a DNS fault target. */
export function isDnsFaultTarget(h: unknown): h is DnsFaultTarget {
  return (
    typeof h === 'object' &&
    h !== null &&
    typeof (h as Partial<DnsFaultTarget>).addDnsFault === 'function' &&
    typeof (h as Partial<DnsFaultTarget>).removeDnsFault === 'function'
  );
}

/** Normalised name: lower case, no trailing dot. */
function norm(n: string): string {
  const s = n.toLowerCase();
  return s.endsWith('.') ? s.slice(0, -1) : s;
}

/** Validates a DNS fault spec; the error names the field and how to fix it. */
export function parseDnsFault(input: unknown, where: string): DnsFaultSpec {
  const r = dnsFaultSpecSchema.safeParse(input);
  if (!r.success) {
    const issue = r.error.issues[0];
    const field = issue ? formatPath(issue.path) : '';
    throw new FieldlabError(
      'E_BAD_FAULT',
      `${where}: DNS fault${field ? `.${field}` : ''}: ${issue?.message ?? 'invalid'}`,
      {
        where: `fault${field ? `.${field}` : ''}`,
        hint: `type is one of ${DNS_FAULT_TYPES.join(', ')}; e.g. {type: servfail, qname: global.iot.example.com}`,
      },
    );
  }
  const spec = r.data;
  const qname = 'qname' in spec && spec.qname !== undefined ? norm(spec.qname) : undefined;
  const name = spec.name ?? (qname ? `${spec.type}_${qname}` : spec.type);
  return { ...spec, ...(qname !== undefined ? { qname } : {}), name } as DnsFaultSpec;
}

/** One sentence for reports, as `describeToxic`: `servfail for global.iot.example.com A, from 2s for 5s`. */
export function describeDnsFault(spec: DnsFaultSpec): string {
  let out: string = spec.type;
  if (spec.type === 'delay')
    out += ` ${formatMs(spec.latency)}${spec.jitter > 0 ? ` ±${formatMs(spec.jitter)}` : ''}`;
  if (spec.type === 'stale') {
    out += spec.record !== undefined ? ` from ${spec.record}` : '';
    out += spec.ttl !== undefined ? ` ttl ${spec.ttl}` : '';
  }
  if (spec.type === 'wrong-answer') out += ` ${spec.address}`;
  if (spec.type !== 'tcp-refused') {
    const what = [spec.qname, spec.qtype].filter(Boolean).join(' ');
    if (what) out += ` for ${what}`;
    if (spec.cidr) out += ` from ${spec.cidr}`;
  }
  if (spec.start !== undefined && spec.start > 0) out += `, from ${formatMs(spec.start)}`;
  if (spec.duration !== undefined) out += `${spec.start ? '' : ','} for ${formatMs(spec.duration)}`;
  return out;
}

/** Events a DnsFaultSet emits through its simulator, named and shaped as the relay's toxic events. */
export type DnsFaultEvents = {
  'toxic-added': { toxic: DnsFaultSpec; description: string };
  'toxic-started': { toxic: string };
  'toxic-removed': { toxic: string; reason: 'removed' | 'expired' | 'stop' };
  /** A fault acted on a query. */
  'toxic-applied': { toxic: string; type: DnsFaultType; query: string; client: string; transport: string };
};

/** The query a fault is matched against. */
export interface DnsQueryInfo {
  qname: string;
  qtype: string;
  /** Whether `cidr` of a fault covers the client (ECS subnet or source). */
  inCidr(cidr: string): boolean;
}

interface Entry {
  spec: DnsFaultSpec;
  active: boolean;
  timers: NodeJS.Timeout[];
}

/** At most this many faults per target: a toggle loop must not grow it without bound. */
const MAX_FAULTS = 256;

/**
 * The faults of one DNS simulator, scheduled (`start`, `duration`) and matched per query. `changed` runs
 * when the active set changes (the simulator drops cached answers, opens or closes its TCP listener).
 */
export class DnsFaultSet {
  private readonly entries: Entry[] = [];
  private stopped = false;

  constructor(
    private readonly where: string,
    private readonly emit: <K extends keyof DnsFaultEvents>(type: K, data: DnsFaultEvents[K]) => void,
    private readonly changed: () => void,
  ) {}

  add(input: DnsFaultSpecInput): DnsFaultSpec {
    const spec = parseDnsFault(input, this.where);
    if (this.entries.some((e) => e.spec.name === spec.name)) {
      throw new FieldlabError(
        'E_FAULT_EXISTS',
        `${this.where}: a DNS fault named ${spec.name} already exists`,
        {
          hint: 'give the fault another name, or remove the existing one',
        },
      );
    }
    if (this.entries.length >= MAX_FAULTS) {
      throw new FieldlabError('E_BAD_FAULT', `${this.where}: more than ${MAX_FAULTS} DNS faults`, {
        hint: 'remove faults that are no longer needed',
      });
    }
    const entry: Entry = { spec, active: false, timers: [] };
    this.entries.push(entry);
    this.emit('toxic-added', { toxic: { ...spec }, description: describeDnsFault(spec) });
    const start = spec.start ?? 0;
    if (start > 0) entry.timers.push(setTimeout(() => this.activate(entry), start));
    else this.activate(entry);
    return { ...spec };
  }

  private activate(entry: Entry): void {
    if (this.stopped || !this.entries.includes(entry) || entry.active) return;
    entry.active = true;
    this.emit('toxic-started', { toxic: entry.spec.name });
    if (entry.spec.duration !== undefined) {
      entry.timers.push(setTimeout(() => this.drop(entry, 'expired'), entry.spec.duration));
    }
    this.changed();
  }

  private drop(entry: Entry, reason: 'removed' | 'expired' | 'stop'): void {
    const i = this.entries.indexOf(entry);
    if (i < 0) return;
    this.entries.splice(i, 1);
    for (const t of entry.timers) clearTimeout(t);
    this.emit('toxic-removed', { toxic: entry.spec.name, reason });
    if (entry.active) this.changed();
  }

  remove(name: string): void {
    const e = this.entries.find((x) => x.spec.name === name);
    if (!e) {
      throw new FieldlabError('E_NO_SUCH_FAULT', `${this.where}: no DNS fault named ${name}`, {
        hint: `DNS faults here: ${this.entries.map((x) => x.spec.name).join(', ') || 'none'}`,
      });
    }
    this.drop(e, 'removed');
  }

  /** Removes every fault whose name starts with `prefix` (the options' sugar replaces its own). */
  removePrefixed(prefix: string): void {
    for (const e of [...this.entries]) if (e.spec.name.startsWith(prefix)) this.drop(e, 'removed');
  }

  list(): DnsFaultSpec[] {
    return this.entries.map((e) => ({ ...e.spec }));
  }

  /** Whether any fault is active (the simulator's fast path skips matching when none is). */
  get anyActive(): boolean {
    return this.entries.some((e) => e.active);
  }

  /** Whether a `tcp-refused` fault is active. */
  get tcpRefused(): boolean {
    return this.entries.some((e) => e.active && e.spec.type === 'tcp-refused');
  }

  /** The active faults matching a query, in the order they were added. */
  match(q: DnsQueryInfo): DnsFaultSpec[] {
    const out: DnsFaultSpec[] = [];
    for (const { spec, active } of this.entries) {
      if (!active || spec.type === 'tcp-refused') continue;
      if (spec.qname !== undefined && spec.qname !== q.qname) continue;
      if (spec.qtype !== undefined && spec.qtype !== q.qtype) continue;
      if (spec.cidr !== undefined && !q.inCidr(spec.cidr)) continue;
      out.push(spec);
    }
    return out;
  }

  /** Reports that `spec` acted on a query. */
  applied(spec: DnsFaultSpec, query: string, client: string, transport: string): void {
    this.emit('toxic-applied', { toxic: spec.name, type: spec.type, query, client, transport });
  }

  stop(): void {
    this.stopped = true;
    for (const e of this.entries) for (const t of e.timers) clearTimeout(t);
  }
}
