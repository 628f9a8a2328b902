import { FieldlabError } from '../../../simulators/common/errors.js';
import { parseOptions } from '../../../simulators/common/options.js';
import { type Cidr, contains, containsIp, formatCidr, formatIp, labCidr } from './addresses.js';
import {
  type FirewallRule,
  type HostConfig,
  type Topology,
  type TopologyInput,
  topologySchema,
} from './model.js';

/**
 * The pure PLAN step of the netns backend: topology in, list of operations out. Nothing here touches
 * the system, so it is unit-tested without root; `apply.ts` executes the steps in order.
 *
 *   root ns: nothing (no links, no routes: labs cannot reach the host's real interfaces)
 *   fl-<lab>-sw:    one bridge per segment; the switch-side veth ends are its ports
 *   fl-<lab>-<host>: lo, eth0.. (veth into the switch), optional WireGuard interface, nft table
 */

/** One operation; `describeStep` renders it as the shell command(s) it stands for. */
export type PlanStep =
  | { kind: 'netns'; ns: string }
  | { kind: 'file'; path: string; content: string; mode?: number }
  | { kind: 'ip'; ns: string; lines: string[]; why: string }
  | { kind: 'sysctl'; ns: string; key: string; value: string }
  | { kind: 'wireguard-go'; ns: string; ifname: string }
  | { kind: 'wg-setconf'; ns: string; ifname: string; path: string }
  | { kind: 'nft'; ns: string; script: string }
  | { kind: 'tc'; ns: string; args: string[] };

export interface PlannedInterface {
  segment: string;
  ifname: string;
  /** The veth end in the switch namespace. */
  peer: string;
  bridge: string;
  address: Cidr;
}

export interface PlannedHost {
  name: string;
  ns: string;
  interfaces: PlannedInterface[];
  wgIfname?: string;
  wgAddress?: Cidr;
}

export interface NetnsPlan {
  labId: string;
  switchNs: string;
  hosts: PlannedHost[];
  /** Directory for generated files (WireGuard configs). */
  workDir: string;
  /** Root of the per-namespace files (`/etc/netns`). */
  etcNetns: string;
  steps: PlanStep[];
  topology: Topology;
}

export interface WireguardKeys {
  privateKey: string;
  publicKey: string;
}

export interface PlanOptions {
  /** Where generated files go (the lab's state directory); default `/tmp/fieldlab-netns-<labId>`. */
  workDir?: string;
  /** Keys per host name; placeholders (`<private-key:host>`) when absent, as in unit tests. */
  keys?: ReadonlyMap<string, WireguardKeys>;
  /** Root of the per-namespace files (`/etc/netns`); tests may point it elsewhere. */
  etcNetns?: string;
}

export function namespaceName(labId: string, host: string): string {
  return `fl-${labId}-${host}`;
}

export function switchNamespace(labId: string): string {
  return `fl-${labId}-sw`;
}

function bad(code: string, message: string, where: string, hint: string): FieldlabError {
  return new FieldlabError(code, message, { where, hint });
}

/** Validates a topology and turns it into steps. Throws `FieldlabError` for any bad field. */
export function planNetns(input: TopologyInput, opts: PlanOptions = {}): NetnsPlan {
  const topo = parseOptions(topologySchema, input, 'netns topology');
  const labId = topo.labId;
  const switchNs = switchNamespace(labId);
  const workDir = opts.workDir ?? `/tmp/fieldlab-netns-${labId}`;
  const etc = opts.etcNetns ?? '/etc/netns';

  // Segments: unique names, lab CIDRs, one bridge each.
  const segments = new Map<string, { cidr: Cidr; bridge: string }>();
  topo.segments.forEach((s, i) => {
    if (segments.has(s.name)) {
      throw bad('E_TOPOLOGY', `segment ${s.name} is defined twice`, `segments[${i}]`, 'rename one');
    }
    const cidr = labCidr(s.cidr, `segments[${i}].cidr`);
    segments.set(s.name, { cidr, bridge: `br${i}-${s.name}`.slice(0, 15) });
  });

  const names = new Set<string>();
  const wgNames = new Set<string>();
  const used = new Map<number, string>();
  const hosts: PlannedHost[] = topo.hosts.map((h, hi) => {
    if (names.has(h.name))
      throw bad('E_TOPOLOGY', `host ${h.name} is defined twice`, `hosts[${hi}]`, 'rename one');
    names.add(h.name);
    const interfaces = h.segments.map((att, si): PlannedInterface => {
      const where = `hosts[${hi}].segments[${si}]`;
      const seg = segments.get(att.segment);
      if (!seg) {
        throw bad('E_TOPOLOGY', `${where}: no segment named ${att.segment}`, where, 'add it under segments');
      }
      const addr = labCidr(
        att.address.includes('/') ? att.address : `${att.address}/${seg.cidr.prefix}`,
        where,
      );
      if (addr.prefix !== seg.cidr.prefix || !contains(seg.cidr, addr)) {
        throw bad(
          'E_TOPOLOGY',
          `${where}: ${att.address} is not in segment ${att.segment} (${formatCidr(seg.cidr)})`,
          where,
          `pick an address inside ${formatCidr(seg.cidr)}`,
        );
      }
      const owner = used.get(addr.address);
      if (owner)
        throw bad(
          'E_TOPOLOGY',
          `${where}: ${formatIp(addr.address)} is already ${owner}'s`,
          where,
          'use another',
        );
      used.set(addr.address, h.name);
      return {
        segment: att.segment,
        ifname: att.ifname ?? `eth${si}`,
        peer: `${h.name.slice(0, 8)}-${hi}.${si}`,
        bridge: seg.bridge,
        address: addr,
      };
    });
    const host: PlannedHost = { name: h.name, ns: namespaceName(labId, h.name), interfaces };
    if (h.wireguard) {
      const ifname = h.wireguard.ifname ?? `fl${labId}w${hi}`;
      if (wgNames.has(ifname) || interfaces.some((i) => i.ifname === ifname)) {
        throw bad(
          'E_TOPOLOGY',
          `hosts[${hi}].wireguard.ifname ${ifname} is used twice`,
          `hosts[${hi}].wireguard.ifname`,
          'WireGuard interface names must differ between namespaces (the UAPI socket path is shared)',
        );
      }
      wgNames.add(ifname);
      host.wgIfname = ifname;
      host.wgAddress = labCidr(h.wireguard.address, `hosts[${hi}].wireguard.address`);
    }
    return host;
  });
  const byName = new Map(hosts.map((h) => [h.name, h]));

  const steps: PlanStep[] = [];
  // 1. Namespaces (the switch first), each with lo up.
  steps.push({ kind: 'netns', ns: switchNs });
  for (const h of hosts) steps.push({ kind: 'netns', ns: h.ns });

  // 2. /etc/netns/<ns>/{hosts,resolv.conf}: `ip netns exec` bind-mounts them over /etc.
  const hostsFile = renderHostsFile(topo, hosts);
  for (const h of hosts) {
    steps.push({ kind: 'file', path: `${etc}/${h.ns}/hosts`, content: hostsFile });
    steps.push({ kind: 'file', path: `${etc}/${h.ns}/resolv.conf`, content: renderResolvConf(topo, h) });
  }

  // 3. Bridges in the switch namespace.
  steps.push({
    kind: 'ip',
    ns: switchNs,
    why: 'bridges',
    lines: [...segments.values()].flatMap((s) => [
      `link add ${s.bridge} type bridge`,
      `link set ${s.bridge} up`,
    ]),
  });
  // 4. Per host: veth pairs (peer moved straight into the switch ns), addresses.
  for (const h of hosts) {
    if (h.interfaces.length === 0) continue;
    steps.push({
      kind: 'ip',
      ns: h.ns,
      why: `links of ${h.name}`,
      lines: h.interfaces.flatMap((i) => [
        `link add ${i.ifname} type veth peer name ${i.peer} netns ${switchNs}`,
        `addr add ${formatCidr(i.address, true)} dev ${i.ifname}`,
        `link set ${i.ifname} up`,
      ]),
    });
  }
  // 5. Switch ports.
  const ports = hosts.flatMap((h) => h.interfaces);
  if (ports.length > 0) {
    steps.push({
      kind: 'ip',
      ns: switchNs,
      why: 'switch ports',
      lines: ports.flatMap((i) => [`link set ${i.peer} master ${i.bridge}`, `link set ${i.peer} up`]),
    });
  }
  // 6. Forwarding, WireGuard, routes, firewall, bandwidth.
  topo.hosts.forEach((h, hi) => {
    const ph = byName.get(h.name) as PlannedHost;
    if (h.forward) steps.push({ kind: 'sysctl', ns: ph.ns, key: 'net.ipv4.ip_forward', value: '1' });
    if (h.wireguard && ph.wgIfname && ph.wgAddress) {
      steps.push(...planWireguard(topo, h, hi, ph, byName, workDir, opts.keys));
    }
    const routeLines = h.routes.map((r, ri) => routeLine(r, ri, hi, ph, segments));
    if (routeLines.length > 0)
      steps.push({ kind: 'ip', ns: ph.ns, why: `routes of ${h.name}`, lines: routeLines });
    if (h.firewall && h.firewall.length > 0) {
      steps.push({ kind: 'nft', ns: ph.ns, script: renderNftTable(h.firewall, `hosts[${hi}].firewall`) });
    }
    for (const [bi, b] of (h.bandwidth ?? []).entries()) {
      steps.push(...planBandwidth(b, ph, switchNs, `hosts[${hi}].bandwidth[${bi}]`));
    }
  });

  return { labId, switchNs, hosts, workDir, etcNetns: etc, steps, topology: topo };
}

function routeLine(
  r: HostConfig['routes'][number],
  ri: number,
  hi: number,
  h: PlannedHost,
  segments: Map<string, { cidr: Cidr }>,
): string {
  const where = `hosts[${hi}].routes[${ri}]`;
  const to = r.to === 'default' ? 'default' : formatCidr(labCidr(r.to, `${where}.to`));
  let line = `route replace ${to}`;
  if (r.via) line += ` via ${formatIp(labCidr(r.via, `${where}.via`).address)}`;
  if (r.dev) {
    const iface = h.interfaces.find((i) => i.segment === r.dev || i.ifname === r.dev);
    const dev = iface?.ifname ?? (r.dev === h.wgIfname ? h.wgIfname : undefined);
    if (!dev) {
      throw bad(
        'E_TOPOLOGY',
        `${where}.dev: ${h.name} has no segment or interface ${r.dev}`,
        where,
        'name one of its segments',
      );
    }
    line += ` dev ${dev}`;
  }
  if (!r.via && !r.dev) {
    throw bad('E_TOPOLOGY', `${where}: a route needs via or dev`, where, 'add via: <gateway address>');
  }
  if (r.via && !r.dev) {
    const gw = labCidr(r.via, `${where}.via`).address;
    const onLink = h.interfaces.some(
      (i) => segments.get(i.segment) && contains(i.address, { network: gw, prefix: 32, address: gw }),
    );
    if (!onLink) {
      throw bad(
        'E_TOPOLOGY',
        `${where}: gateway ${r.via} is on none of ${h.name}'s segments`,
        where,
        'use a neighbour',
      );
    }
  }
  return line;
}

function planWireguard(
  topo: Topology,
  h: HostConfig,
  hi: number,
  ph: PlannedHost,
  byName: Map<string, PlannedHost>,
  workDir: string,
  keys: ReadonlyMap<string, WireguardKeys> | undefined,
): PlanStep[] {
  const wg = h.wireguard as NonNullable<HostConfig['wireguard']>;
  const ifname = ph.wgIfname as string;
  const conf = ['[Interface]', `PrivateKey = ${keys?.get(h.name)?.privateKey ?? `<private-key:${h.name}>`}`];
  conf.push(`ListenPort = ${wg.listenPort}`);
  const routes: string[] = [];
  wg.peers.forEach((p, pi) => {
    const where = `hosts[${hi}].wireguard.peers[${pi}]`;
    const peerCfg = topo.hosts.find((x) => x.name === p.host);
    const peer = byName.get(p.host);
    if (!peerCfg?.wireguard || !peer) {
      throw bad(
        'E_TOPOLOGY',
        `${where}: host ${p.host} has no wireguard block`,
        where,
        'give the peer host a wireguard block',
      );
    }
    conf.push('', '[Peer]', `PublicKey = ${keys?.get(p.host)?.publicKey ?? `<public-key:${p.host}>`}`);
    const allowed = p.allowedIps.map((a, ai) => formatCidr(labCidr(a, `${where}.allowedIps[${ai}]`)));
    conf.push(`AllowedIPs = ${allowed.join(', ')}`);
    if (p.endpoint !== false) {
      let ep = typeof p.endpoint === 'string' ? p.endpoint : undefined;
      if (ep === undefined) {
        const shared = peer.interfaces.find((i) => ph.interfaces.some((m) => m.segment === i.segment));
        const target = shared ?? peer.interfaces[0];
        if (!target)
          throw bad('E_TOPOLOGY', `${where}: ${p.host} has no address to send to`, where, 'set endpoint');
        ep = `${formatIp(target.address.address)}:${peerCfg.wireguard.listenPort}`;
      } else {
        const [ip, port] = ep.split(':');
        labCidr(ip ?? '', `${where}.endpoint`);
        if (!port || !/^\d+$/.test(port))
          throw bad('E_TOPOLOGY', `${where}.endpoint needs ip:port`, where, 'e.g. 203.0.113.1:51820');
      }
      conf.push(`Endpoint = ${ep}`);
    }
    if (p.persistentKeepalive !== undefined) conf.push(`PersistentKeepalive = ${p.persistentKeepalive}`);
    // AllowedIPs decide what the tunnel accepts; routes decide what the kernel hands to it.
    for (const a of allowed) routes.push(`route replace ${a} dev ${ifname}`);
  });
  const path = `${workDir}/${ifname}.conf`;
  return [
    { kind: 'file', path, content: `${conf.join('\n')}\n`, mode: 0o600 },
    { kind: 'wireguard-go', ns: ph.ns, ifname },
    { kind: 'wg-setconf', ns: ph.ns, ifname, path },
    {
      kind: 'ip',
      ns: ph.ns,
      why: `wireguard ${ifname}`,
      lines: [
        `addr add ${formatCidr(ph.wgAddress as Cidr, true)} dev ${ifname}`,
        `link set ${ifname} up`,
        ...routes,
      ],
    },
  ];
}

/** tc wants a rate it understands; a number is bits per second. */
export function tcRate(rate: number | string): { text: string; bitsPerSecond: number } {
  if (typeof rate === 'number') return { text: `${rate}bit`, bitsPerSecond: rate };
  const m = /^(\d+(?:\.\d+)?)(bit|kbit|mbit|gbit)$/.exec(rate);
  if (!m) throw new FieldlabError('E_BAD_OPTION', `bad rate ${rate}`, { hint: 'e.g. 512kbit, 2mbit' });
  const mult = { bit: 1, kbit: 1e3, mbit: 1e6, gbit: 1e9 }[m[2] as 'bit'];
  return { text: rate, bitsPerSecond: Number(m[1]) * mult };
}

/** `tc qdisc replace ... tbf` arguments for one device (burst: 20 ms of traffic, at least 16 KiB). */
export function tbfArgs(dev: string, rate: number | string): string[] {
  const r = tcRate(rate);
  const burst = Math.max(16 * 1024, Math.ceil(r.bitsPerSecond / 8 / 50));
  return [
    'qdisc',
    'replace',
    'dev',
    dev,
    'root',
    'tbf',
    'rate',
    r.text,
    'burst',
    String(burst),
    'latency',
    '400ms',
  ];
}

function planBandwidth(
  b: NonNullable<HostConfig['bandwidth']>[number],
  h: PlannedHost,
  switchNs: string,
  where: string,
): PlanStep[] {
  const iface = b.segment ? h.interfaces.find((i) => i.segment === b.segment) : h.interfaces[0];
  if (!iface)
    throw bad(
      'E_TOPOLOGY',
      `${where}: ${h.name} is not on segment ${b.segment ?? '(any)'}`,
      where,
      'name one of its segments',
    );
  const steps: PlanStep[] = [];
  if (b.direction !== 'ingress') steps.push({ kind: 'tc', ns: h.ns, args: tbfArgs(iface.ifname, b.rate) });
  // What the host receives leaves the switch through the peer end: shape its egress.
  if (b.direction !== 'egress') steps.push({ kind: 'tc', ns: switchNs, args: tbfArgs(iface.peer, b.rate) });
  return steps;
}

function nftMatch(rule: FirewallRule, where: string): string {
  const parts: string[] = [];
  if (rule.from) parts.push(`ip saddr ${formatCidr(labCidr(rule.from, `${where}.from`))}`);
  if (rule.to) parts.push(`ip daddr ${formatCidr(labCidr(rule.to, `${where}.to`))}`);
  if (rule.port !== undefined) {
    if (rule.proto !== 'tcp' && rule.proto !== 'udp') {
      throw bad('E_TOPOLOGY', `${where}: a port needs proto tcp or udp`, where, 'add proto: tcp');
    }
    const port = Array.isArray(rule.port) ? `${rule.port[0]}-${rule.port[1]}` : String(rule.port);
    parts.push(`${rule.proto} dport ${port}`);
  } else if (rule.proto) {
    parts.push(`meta l4proto ${rule.proto}`);
  }
  return parts.join(' ');
}

function nftVerdict(rule: FirewallRule): string {
  if (rule.action === 'accept') return 'accept';
  if (rule.action === 'drop') return 'drop';
  // A TCP refusal is a RST (the client sees ECONNREFUSED at once); anything else gets ICMP unreachable.
  if (rule.proto === 'tcp') return 'reject with tcp reset';
  return 'reject with icmpx type port-unreachable';
}

/**
 * The namespace's `table inet fieldlab`. Each rule carries a counter and a comment `fl:<index>` so
 * `firewallCounters` can map nft's JSON back to the rule.
 */
export function renderNftTable(rules: readonly FirewallRule[], where = 'firewall'): string {
  const chains: Record<'input' | 'forward' | 'output', string[]> = { input: [], forward: [], output: [] };
  rules.forEach((rule, i) => {
    const w = `${where}[${i}]`;
    const line = [nftMatch(rule, w), 'counter', nftVerdict(rule), `comment "fl:${i}"`]
      .filter(Boolean)
      .join(' ');
    for (const c of rule.chain ? [rule.chain] : (['input', 'forward'] as const)) chains[c].push(line);
  });
  const out = ['table inet fieldlab {'];
  for (const c of ['input', 'forward', 'output'] as const) {
    out.push(`  chain ${c} {`, `    type filter hook ${c} priority filter; policy accept;`);
    for (const l of chains[c]) out.push(`    ${l}`);
    out.push('  }');
  }
  out.push('}');
  return `${out.join('\n')}\n`;
}

function renderHostsFile(topo: Topology, hosts: PlannedHost[]): string {
  const lines = ['127.0.0.1\tlocalhost', '::1\tlocalhost'];
  for (const h of hosts) {
    const a = h.interfaces[0]?.address ?? h.wgAddress;
    if (a) lines.push(`${formatIp(a.address)}\t${h.name}`);
  }
  for (const [name, addr] of Object.entries(topo.dns.hosts)) {
    lines.push(`${formatIp(labCidr(addr, `dns.hosts.${name}`).address)}\t${name}`);
  }
  const self = topo.dns.localName;
  if (self && !hosts.some((h) => h.name === self) && !(self in topo.dns.hosts))
    lines.push(`127.0.1.1\t${self}`);
  return `${lines.join('\n')}\n`;
}

/**
 * A host's resolv.conf. Of the nameservers, the first on one of the host's own segments when there is
 * one (a server with an address on every segment, as the lab's own resolver has, is asked on-link and
 * once: a second address of the same server would only repeat a timeout), else all of them in order.
 */
export function renderResolvConf(topo: Topology, host: Pick<PlannedHost, 'interfaces'>): string {
  const lines = ['# fieldlab netns lab'];
  const servers = topo.dns.nameservers.map((n, i) => labCidr(n, `dns.nameservers[${i}]`).address);
  const onLink = servers.find((a) => host.interfaces.some((i) => containsIp(i.address, a)));
  for (const a of onLink !== undefined ? [onLink] : servers) lines.push(`nameserver ${formatIp(a)}`);
  if (topo.dns.search) lines.push(`search ${topo.dns.search}`);
  // No nameserver: lookups fail at once instead of leaking to the host's resolver.
  if (servers.length === 0) lines.push('options attempts:1 timeout:1');
  return `${lines.join('\n')}\n`;
}

/** The shell command(s) a step stands for: for logs, dry runs and unit tests. */
export function describeStep(step: PlanStep): string[] {
  switch (step.kind) {
    case 'netns':
      return [`ip netns add ${step.ns}`, `ip -n ${step.ns} link set lo up`];
    case 'file':
      return [`write ${step.path}`];
    case 'ip':
      return step.lines.map((l) => `ip -n ${step.ns} ${l}`);
    case 'sysctl':
      return [`ip netns exec ${step.ns} sysctl -w ${step.key}=${step.value}`];
    case 'wireguard-go':
      return [`ip netns exec ${step.ns} wireguard-go ${step.ifname}`];
    case 'wg-setconf':
      return [`ip netns exec ${step.ns} wg setconf ${step.ifname} ${step.path}`];
    case 'nft':
      return [`ip netns exec ${step.ns} nft -f - <<< table inet fieldlab`];
    case 'tc':
      return [`ip netns exec ${step.ns} tc ${step.args.join(' ')}`];
  }
}

/** Every command of a plan, in order. */
export function describePlan(plan: NetnsPlan): string[] {
  return plan.steps.flatMap(describeStep);
}
