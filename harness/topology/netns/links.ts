/**
 * The kernel side of a fault on the link between two lab hosts (netns backend), as plain commands:
 * nftables tables for what is dropped or refused, and an htb class (with a netem leaf for delay) for
 * what is shaped. Pure: `backends/netns/link-faults.ts` runs them in the hosts' namespaces.
 *
 *   sender's output ── nft `meta priority set 1:<n>` (daddr = the peer) ──► htb 1:<n> [netem] ──► veth
 *   receiver's input ── nft drop / reject with tcp reset (saddr = the peer)
 *
 * Each fault gets its own table per host (`inet fllink<n>`), so adding or removing one never resets
 * another's counters; every rule carries a counter and an `fl:<index>` comment (`parseNftCounters`).
 */

/** One nftables rule of a link fault, on one host. */
export type LinkRule =
  /** input: every packet from `from` is dropped (no answer: the peer's connect times out). */
  | { kind: 'drop'; from: readonly string[] }
  /** input: a TCP SYN from `from` is answered with RST (the peer sees a refusal, as a closed port). */
  | { kind: 'refuse'; from: readonly string[] }
  /** input: every TCP segment from `from` is answered with RST (open connections are reset). */
  | { kind: 'reset'; from: readonly string[] }
  /** input: IP packets from `from` longer than `length` bytes are dropped (a path MTU black hole). */
  | { kind: 'drop-over'; from: readonly string[]; length: number }
  /** output: packets to `to` go to the htb class `classid` (`1:<hex>`) of the sending interface. */
  | { kind: 'classify'; to: readonly string[]; classid: string };

const addrSet = (a: readonly string[]): string => (a.length === 1 ? (a[0] as string) : `{ ${a.join(', ')} }`);

function ruleLine(r: LinkRule): { chain: 'input' | 'output'; line: string } {
  switch (r.kind) {
    case 'drop':
      return { chain: 'input', line: `ip saddr ${addrSet(r.from)} counter drop` };
    case 'refuse':
      // RFC 9293 §3.10.7.1: a SYN to a CLOSED port is answered with RST; the connecting side sees a refusal.
      return {
        chain: 'input',
        line: `ip saddr ${addrSet(r.from)} tcp flags & (syn | ack) == syn counter reject with tcp reset`,
      };
    case 'reset':
      return {
        chain: 'input',
        line: `ip saddr ${addrSet(r.from)} meta l4proto tcp counter reject with tcp reset`,
      };
    case 'drop-over':
      return { chain: 'input', line: `ip saddr ${addrSet(r.from)} ip length > ${r.length} counter drop` };
    case 'classify':
      return { chain: 'output', line: `ip daddr ${addrSet(r.to)} counter meta priority set ${r.classid}` };
  }
}

/** The nft script that (re)creates a link fault's table on one host. */
export function renderLinkTable(table: string, rules: readonly LinkRule[]): string {
  const chains: Record<'input' | 'output', string[]> = { input: [], output: [] };
  rules.forEach((r, i) => {
    const { chain, line } = ruleLine(r);
    chains[chain].push(`${line} comment "fl:${i}"`);
  });
  const out = [`table inet ${table} {`];
  for (const c of ['input', 'output'] as const) {
    if (chains[c].length === 0) continue;
    out.push(`  chain ${c} {`, `    type filter hook ${c} priority filter; policy accept;`);
    for (const l of chains[c]) out.push(`    ${l}`);
    out.push('  }');
  }
  out.push('}');
  // `table ...` first makes the delete idempotent; the whole script is one nft transaction.
  return `table inet ${table}\ndelete table inet ${table}\n${out.join('\n')}\n`;
}

/** The nft script that removes a link fault's table (a table that is not there is no error). */
export function dropLinkTable(table: string): string {
  return `table inet ${table}\ndelete table inet ${table}\n`;
}

/** What one shaping class does: a rate (bits/s, none = unlimited) and a delay with jitter (netem). */
export interface LinkShape {
  rateBits?: number;
  delayMs?: number;
  jitterMs?: number;
}

/** Unclassified traffic: the htb default class, as fast as the veth goes. */
export const DEFAULT_CLASS = '1:1';
const UNLIMITED = '10gbit';

/** `tc` argument lists that put the htb root (and its default class) on a device. */
export function htbRootArgs(dev: string): string[][] {
  return [
    ['qdisc', 'replace', 'dev', dev, 'root', 'handle', '1:', 'htb', 'default', '1'],
    ['class', 'replace', 'dev', dev, 'parent', '1:', 'classid', DEFAULT_CLASS, 'htb', 'rate', UNLIMITED],
  ];
}

/** `tc` argument lists that add one link fault's class (and its netem leaf) under the htb root. */
export function shapeClassArgs(dev: string, classid: string, shape: LinkShape): string[][] {
  const rate = shape.rateBits === undefined ? UNLIMITED : `${Math.max(8, Math.round(shape.rateBits))}bit`;
  const out: string[][] = [
    ['class', 'replace', 'dev', dev, 'parent', '1:', 'classid', classid, 'htb', 'rate', rate, 'ceil', rate],
  ];
  if (shape.delayMs !== undefined && shape.delayMs > 0) {
    const netem = ['delay', `${shape.delayMs}ms`];
    if (shape.jitterMs) netem.push(`${shape.jitterMs}ms`);
    // A leaf qdisc's handle: the class's minor as its major (1:1a → 1a:).
    const handle = `${classid.split(':')[1]}:`;
    out.push(['qdisc', 'replace', 'dev', dev, 'parent', classid, 'handle', handle, 'netem', ...netem]);
  }
  return out;
}

/** `tc` argument lists that remove a link fault's class (its leaf qdisc first). */
export function removeClassArgs(dev: string, classid: string): string[][] {
  return [
    ['qdisc', 'del', 'dev', dev, 'parent', classid],
    ['class', 'del', 'dev', dev, 'classid', classid],
  ];
}

/** Sent bytes and packets of an htb class, from `tc -s class show dev <dev>`. */
export function parseClassStats(text: string, classid: string): { bytes: number; packets: number } {
  const lines = text.split('\n');
  const at = lines.findIndex((l) => l.startsWith(`class htb ${classid} `));
  const m = at >= 0 ? /Sent (\d+) bytes (\d+) pkt/.exec(lines[at + 1] ?? '') : null;
  return { bytes: Number(m?.[1] ?? 0), packets: Number(m?.[2] ?? 0) };
}
