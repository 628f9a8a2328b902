import { FieldlabError } from '../../../simulators/common/errors.js';
import type { LabEvent } from '../../../simulators/common/events.js';
import { LINK_TOXIC_TYPES, type ToxicSpec, type ToxicSpecInput, toxicSpecSchema } from '../../faults/spec.js';
import { formatIp } from '../../topology/netns/addresses.js';
import { run, runChecked } from '../../topology/netns/exec.js';
import { type NetnsLab, parseNftCounters } from '../../topology/netns/index.js';
import {
  dropLinkTable,
  htbRootArgs,
  type LinkRule,
  type LinkShape,
  parseClassStats,
  removeClassArgs,
  renderLinkTable,
  shapeClassArgs,
} from '../../topology/netns/links.js';
import { detectNetem } from '../../topology/netns/netem.js';

/**
 * Faults on the link between two hosts of a netns lab (`target: proxy~hub`), done by the kernel:
 * latency/jitter with netem and bandwidth with htb on the sender's interfaces (only for packets to the
 * peer), blackhole/timeout as nftables drops and refuse/reset_peer as TCP resets on each host's input
 * (only for packets from the peer), mtu_blackhole as a length drop. The toxic vocabulary is the relay's:
 * upstream = first host → second, downstream (the default) = second → first.
 *
 * Everything lives in the two namespaces (nft tables `inet fllink<n>`, htb classes), so the lab's
 * teardown, or `fieldlab clean` after a crash, removes it with them.
 */

interface Installed {
  /** nft tables by host. */
  tables: Map<string, string>;
  /** htb classes by host: the sender's devices. */
  classes: { host: string; devs: string[]; classid: string; shape: LinkShape }[];
}

interface ActiveLinkFault {
  name: string;
  link: [string, string];
  spec: ToxicSpec;
  /** What is in place in the kernel (after a delayed `start`, only then). */
  installed?: Installed;
  /** Rules per host as installed (for the counters' sentences). */
  rules: Map<string, LinkRule[]>;
  timers: NodeJS.Timeout[];
  /** The kernel work in flight (install then remove are serialised through it). */
  work: Promise<void>;
}

/** Shaping needs the htb root on every device of the sender. */
const SHAPES = new Set(['latency', 'bandwidth']);

export class LinkFaults {
  private readonly active = new Map<string, ActiveLinkFault>();
  private next = 0;
  private closed = false;

  constructor(private readonly network: NetnsLab) {}

  /**
   * Checks a link fault at once (a clear error names what is wrong) and puts it in place; the promise
   * settles when the kernel has it (for `lab.trackFault`).
   */
  apply(link: [string, string], input: ToxicSpecInput): Promise<void> {
    const spec = toxicSpecSchema.parse(input);
    const target = link.join('~');
    const name = spec.name ?? `${spec.type}_${spec.stream}`;
    this.check(link, target, spec);
    if (this.active.has(name)) {
      throw new FieldlabError('E_TOXIC_EXISTS', `${target} already has a fault named ${name}`, {
        hint: 'give the second one its own `name:`',
      });
    }
    const f: ActiveLinkFault = { name, link, spec, rules: new Map(), timers: [], work: Promise.resolve() };
    this.active.set(name, f);
    const start = spec.start ?? 0;
    const install = () => this.serial(f, () => this.install(f));
    let applied: Promise<void>;
    if (start > 0) {
      applied = Promise.resolve();
      f.timers.push(setTimeout(() => void install().catch(() => {}), start));
    } else applied = install();
    if (spec.duration !== undefined) {
      f.timers.push(setTimeout(() => void this.remove(name).catch(() => {}), start + (spec.duration ?? 0)));
    }
    return applied;
  }

  /** Removes a link fault by name; connections go on as the kernel now lets them. */
  remove(name: string): Promise<void> {
    const f = this.active.get(name);
    if (!f) {
      const have = [...this.active.keys()].join(', ') || 'none';
      return Promise.reject(
        new FieldlabError('E_NO_TOXIC', `no link fault named ${name}`, { hint: `link faults: ${have}` }),
      );
    }
    this.active.delete(name);
    for (const t of f.timers) clearTimeout(t);
    return this.serial(f, () => this.uninstall(f));
  }

  /** Whether a fault of that name is on a link (rather than on a relay). */
  has(name: string): boolean {
    return this.active.has(name);
  }

  /** Stops the timers; the kernel state goes with the namespaces. */
  close(): void {
    this.closed = true;
    for (const f of this.active.values()) for (const t of f.timers) clearTimeout(t);
    this.active.clear();
  }

  /**
   * One `firewall-match` event per link rule that counted packets (drop → tcp.timeout, reject →
   * tcp.refused in the evidence rules), with `<host> link <a~b>` as the source.
   */
  async events(time: number): Promise<LabEvent[]> {
    const out: LabEvent[] = [];
    for (const f of this.active.values()) {
      for (const [host, table] of f.installed?.tables ?? []) {
        const r = await run([
          'ip',
          'netns',
          'exec',
          this.network.ns(host),
          'nft',
          '-j',
          'list',
          'table',
          'inet',
          table,
        ]);
        if (r.exitCode !== 0) continue;
        const rules = f.rules.get(host) ?? [];
        for (const c of parseNftCounters(r.stdout)) {
          const rule = rules[c.index];
          if (!rule || c.packets === 0 || rule.kind === 'classify') continue;
          out.push({
            time,
            source: `${host} link ${f.link.join('~')}`,
            type: 'firewall-match',
            data: {
              action: rule.kind === 'drop' || rule.kind === 'drop-over' ? 'drop' : 'reject',
              rule: `${f.name} (${describeLinkRule(rule)})`,
              index: c.index,
              packets: c.packets,
              link: f.link.join('~'),
              fault: f.name,
            },
          });
        }
      }
    }
    return out;
  }

  /** Sentences for the shaping faults that carried packets (netem/htb class counters). */
  async explain(): Promise<string[]> {
    const lines: string[] = [];
    for (const f of this.active.values()) {
      for (const c of f.installed?.classes ?? []) {
        let packets = 0;
        for (const dev of c.devs) {
          const r = await run([
            'ip',
            'netns',
            'exec',
            this.network.ns(c.host),
            'tc',
            '-s',
            'class',
            'show',
            'dev',
            dev,
          ]);
          packets += parseClassStats(r.stdout, c.classid).packets;
        }
        if (packets === 0) continue;
        const peer = f.link[0] === c.host ? f.link[1] : f.link[0];
        lines.push(
          `link fault ${f.name} on ${f.link.join('~')} (${describeShape(c.shape)}) held ${packets} packet(s) from ${c.host} to ${peer}`,
        );
      }
    }
    return lines;
  }

  private check(link: [string, string], target: string, spec: ToxicSpec): void {
    const [a, b] = link;
    for (const h of link) this.network.host(h); // E_NETNS_HOST names the hosts there are
    if (a === b) {
      throw new FieldlabError('E_LINK_FAULT', `${target}: a link joins two different hosts`, {
        hint: 'name the two network hosts whose traffic the fault is on, e.g. proxy~hub',
      });
    }
    const refuse = (why: string): never => {
      throw new FieldlabError('E_LINK_FAULT', `${target}: ${spec.type} ${why}`, {
        hint: `a link takes ${LINK_TOXIC_TYPES.join(', ')} (timeout and reset_peer with timeout 0, toxicity 1); other toxics go on a simulator's relay (target: <simulator>)`,
      });
    };
    if (!LINK_TOXIC_TYPES.includes(spec.type)) refuse('has no kernel equivalent on a link');
    if (spec.toxicity !== 1)
      refuse('with a toxicity below 1 picks connections, which the kernel does not see');
    if ((spec.type === 'timeout' || spec.type === 'reset_peer') && spec.timeout !== 0) {
      refuse('after a delay has no kernel equivalent (only timeout: 0)');
    }
    if (spec.type === 'latency' || spec.type === 'bandwidth') {
      const sender = this.sender(link, spec);
      const shaped = this.network.plan.topology.hosts
        .find((h) => h.name === sender)
        ?.bandwidth?.some((bw) => bw.direction !== 'ingress');
      if (shaped) {
        throw new FieldlabError(
          'E_LINK_FAULT',
          `${target}: ${sender} already shapes what it sends (its bandwidth), which a ${spec.type} on the link cannot share`,
          {
            hint: 'drop the host’s egress bandwidth for this variant, or put the toxic on a simulator’s relay',
          },
        );
      }
      for (const other of this.active.values()) {
        if (
          SHAPES.has(other.spec.type) &&
          this.sender(other.link, other.spec) === sender &&
          sameLink(other.link, link)
        ) {
          throw new FieldlabError('E_LINK_FAULT', `${target}: ${other.name} already shapes this direction`, {
            hint: 'one latency or bandwidth per link direction; remove the other first',
          });
        }
      }
    }
  }

  /** The host whose sending a shaping toxic slows: upstream = the first host sends. */
  private sender(link: [string, string], spec: ToxicSpec): string {
    return spec.stream === 'upstream' ? link[0] : link[1];
  }

  private addresses(host: string): string[] {
    const h = this.network.host(host);
    const out = h.interfaces.map((i) => formatIp(i.address.address));
    if (h.wgAddress) out.push(formatIp(h.wgAddress.address));
    return out;
  }

  private serial(f: ActiveLinkFault, op: () => Promise<void>): Promise<void> {
    const run = f.work.then(op);
    f.work = run.catch(() => {});
    return run;
  }

  private async install(f: ActiveLinkFault): Promise<void> {
    if (this.closed) return;
    const { spec, link } = f;
    const [a, b] = link;
    const installed: Installed = { tables: new Map(), classes: [] };
    f.installed = installed;
    const table = `fllink${this.next++}`;
    const put = async (host: string, rules: LinkRule[]) => {
      f.rules.set(host, rules);
      installed.tables.set(host, table);
      await this.nft(host, renderLinkTable(table, rules));
    };
    const both = async (rule: (from: string[]) => LinkRule) => {
      await put(a, [rule(this.addresses(b))]);
      await put(b, [rule(this.addresses(a))]);
    };
    switch (spec.type) {
      case 'blackhole':
      case 'timeout':
        return both((from) => ({ kind: 'drop', from }));
      case 'refuse':
        return both((from) => ({ kind: 'refuse', from }));
      case 'reset_peer':
        return both((from) => ({ kind: 'reset', from }));
      case 'mtu_blackhole': {
        const sender = this.sender(link, spec);
        const receiver = sender === a ? b : a;
        return put(receiver, [{ kind: 'drop-over', from: this.addresses(sender), length: spec.mtu }]);
      }
      case 'latency':
      case 'bandwidth': {
        const shape: LinkShape =
          spec.type === 'latency'
            ? { delayMs: spec.latency ?? 0, jitterMs: spec.jitter ?? 0 }
            : { rateBits: spec.rate * 1024 * 8 };
        if (shape.delayMs) {
          const netem = await detectNetem();
          if (!netem.available) {
            throw new FieldlabError(
              'E_LINK_NO_NETEM',
              `${link.join('~')}: latency on a link needs the kernel's netem, which this machine lacks (${netem.reason})`,
              {
                hint: 'put the latency toxic on the simulator’s relay instead (target: <simulator>), or run on a kernel with sch_netem',
              },
            );
          }
        }
        const sender = this.sender(link, spec);
        const receiver = sender === a ? b : a;
        const classid = `1:${(0x10 + this.next).toString(16)}`;
        const devs = this.network.host(sender).interfaces.map((i) => i.ifname);
        installed.classes.push({ host: sender, devs, classid, shape });
        for (const dev of devs) {
          for (const args of [...htbRootArgs(dev), ...shapeClassArgs(dev, classid, shape)])
            await this.tc(sender, args);
        }
        return put(sender, [{ kind: 'classify', to: this.addresses(receiver), classid }]);
      }
      default:
        return;
    }
  }

  private async uninstall(f: ActiveLinkFault): Promise<void> {
    const installed = f.installed;
    if (!installed || this.closed) return;
    for (const [host, table] of installed.tables) await this.nft(host, dropLinkTable(table));
    for (const c of installed.classes) {
      for (const dev of c.devs) {
        const [qdisc, cls] = removeClassArgs(dev, c.classid);
        // A class without a netem leaf has no qdisc to delete.
        if (c.shape.delayMs) await this.tc(c.host, qdisc as string[]);
        await this.tc(c.host, cls as string[]);
      }
    }
  }

  private async nft(host: string, script: string): Promise<void> {
    await runChecked(['ip', 'netns', 'exec', this.network.ns(host), 'nft', '-f', '-'], { input: script });
  }

  private async tc(host: string, args: string[]): Promise<void> {
    await runChecked(['ip', 'netns', 'exec', this.network.ns(host), 'tc', ...args]);
  }
}

function sameLink(x: [string, string], y: [string, string]): boolean {
  return (x[0] === y[0] && x[1] === y[1]) || (x[0] === y[1] && x[1] === y[0]);
}

function describeLinkRule(r: LinkRule): string {
  switch (r.kind) {
    case 'drop':
      return `drop all from ${r.from.join(', ')}`;
    case 'refuse':
      return `reject tcp SYN from ${r.from.join(', ')}`;
    case 'reset':
      return `reset tcp from ${r.from.join(', ')}`;
    case 'drop-over':
      return `drop packets over ${r.length} bytes from ${r.from.join(', ')}`;
    case 'classify':
      return `shape to ${r.to.join(', ')}`;
  }
}

function describeShape(s: LinkShape): string {
  const parts: string[] = [];
  if (s.delayMs) parts.push(`delay ${s.delayMs} ms${s.jitterMs ? ` ± ${s.jitterMs} ms` : ''}`);
  if (s.rateBits !== undefined) parts.push(`rate ${Math.round(s.rateBits / 8 / 1024)} KB/s`);
  return parts.join(', ');
}
