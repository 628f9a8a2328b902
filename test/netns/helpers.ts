import type { ChildProcess } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import type { NetnsLab } from '../../harness/topology/netns/apply.js';
import { runSync } from '../../harness/topology/netns/exec.js';

export const NET_TOOL = join(import.meta.dirname, 'fixtures', 'net-tool.mjs');

/** Starts the echo server inside a host; resolves once it listens (bounded). */
export function serveIn(lab: NetnsLab, host: string, addr: string, ports: number[]): Promise<ChildProcess> {
  const child = lab.spawnIn(host, [process.execPath, NET_TOOL, 'serve', addr, ports.join(',')]);
  return new Promise((resolve, reject) => {
    let out = '';
    let err = '';
    const t = setTimeout(() => reject(new Error(`echo server in ${host} not up in 10 s: ${err}`)), 10_000);
    child.stderr?.on('data', (d: Buffer) => (err += d.toString()));
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      if (out.includes('listening')) {
        clearTimeout(t);
        resolve(child);
      }
    });
    child.once('exit', (code) => {
      clearTimeout(t);
      reject(new Error(`echo server in ${host} exited ${code}: ${err}`));
    });
  });
}

export interface ConnectOutcome {
  result: 'ok' | 'refused' | 'timeout' | 'unreachable' | 'short' | 'error' | 'read-timeout';
  ms: number;
  bytes: number;
  firstByteAt?: number;
  code?: string;
}

/** A real TCP connect (and echo) from inside a host. */
export async function connectFrom(
  lab: NetnsLab,
  host: string,
  addr: string,
  port: number,
  timeoutMs = 2_000,
  receive?: number,
): Promise<ConnectOutcome> {
  const argv = [process.execPath, NET_TOOL, 'connect', addr, String(port), String(timeoutMs)];
  if (receive !== undefined) argv.push(String(receive));
  const r = await lab.execIn(host, argv, { timeoutMs: timeoutMs + 10_000 });
  const line = r.stdout.trim().split('\n').pop() ?? '';
  if (!line.startsWith('{')) throw new Error(`net-tool printed nothing (exit ${r.exitCode}): ${r.stderr}`);
  return JSON.parse(line) as ConnectOutcome;
}

/**
 * Links that appeared in the root namespace since `before` and look like ours (veth ends `host-0.0`,
 * bridges `br0-lan`, `fl*`, `eth*`, WireGuard names): the backend must never create any. Links
 * other software adds meanwhile (docker...) are not counted.
 */
export function strayLinks(before: readonly string[]): string[] {
  return rootLinks().filter((n) => !before.includes(n) && /(-\d+\.\d+$|^br\d+-|^fl|^eth\d|^wg)/.test(n));
}

/** Links in the root namespace (names only). */
export function rootLinks(): string[] {
  const r = runSync(['ip', '-j', 'link', 'show']);
  return (JSON.parse(r.stdout) as Array<{ ifname: string }>).map((l) => l.ifname).sort();
}

/** Namespaces of a lab (`fl-<labId>-*`), or every namespace whose name matches a pattern. */
export function namespacesOf(lab: string | RegExp): string[] {
  const ours =
    typeof lab === 'string' ? (n: string) => n.startsWith(`fl-${lab}-`) : (n: string) => lab.test(n);
  return runSync(['ip', 'netns', 'list'])
    .stdout.split('\n')
    .map((l) => l.split(' ')[0] ?? '')
    .filter(ours);
}

/** PIDs of running wireguard-go processes (by /proc/PID/comm). */
export function wireguardGoPids(): number[] {
  const out: number[] = [];
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const comm = readFileSync(`/proc/${d}/comm`, 'utf8').trim();
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      const zombie = stat.slice(stat.lastIndexOf(')') + 2).startsWith('Z');
      if (comm === 'wireguard-go' && !zombie) out.push(Number(d));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}
