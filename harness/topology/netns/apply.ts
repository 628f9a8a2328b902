import { type ChildProcess, type SpawnOptions, spawn } from 'node:child_process';
import type { Socket as UdpSocket } from 'node:dgram';
import { existsSync, mkdirSync, readFileSync, renameSync, writeFileSync } from 'node:fs';
import { dirname } from 'node:path';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { dieWithParent } from '../../../simulators/common/parent-death.js';
import { processStartTicks } from '../../process-state.js';
import { formatCidr, formatIp, labCidr } from './addresses.js';
import { type ExecOptions, type ExecResult, run, runChecked } from './exec.js';
import type { FirewallRule, TopologyInput } from './model.js';
import {
  type NetnsPlan,
  type PlannedHost,
  type PlanOptions,
  type PlanStep,
  planNetns,
  renderNftTable,
  tbfArgs,
  type WireguardKeys,
} from './plan.js';
import { type NetnsRecord, newRecord, OWNER_FILE, readRecord, recordPath, saveRecord } from './state.js';
import { isRunning, teardownRecord } from './teardown.js';

/** One rule's counter, as `nft -j list table inet fieldlab` reports it. */
export interface FirewallCounter {
  /** Index of the rule in the host's `firewall` list. */
  index: number;
  chain: string;
  action: string;
  packets: number;
  bytes: number;
}

export interface ApplyOptions extends Pick<PlanOptions, 'etcNetns'> {
  /**
   * On SIGINT/SIGTERM nobody else listens for, tear the lab down and re-raise; default true. When another
   * listener handles the signal it must stop the lab (or exit: the `exit` hook tears down what is left).
   */
  signalHandlers?: boolean;
  /** Called with each command as it runs (dry-run style logs). */
  log?: (line: string) => void;
}

const WG_RUN_DIR = '/var/run/wireguard';
const live = new Set<NetnsLab>();
let handlersInstalled = false;

function installHandlers(): void {
  if (handlersInstalled) return;
  handlersInstalled = true;
  const onSignal = (sig: NodeJS.Signals): void => {
    // Another listener (the CLI's) owns the stop: it stops each lab, which tears its network down after
    // the lab's sockets and client are gone. Tearing down here would pull the namespaces from under a
    // lab still stopping; the `exit` hook below stays the last resort.
    if (process.listenerCount(sig) > 1) return;
    for (const lab of live) lab.teardownSync();
    process.removeListener(sig, onSignal);
    // Nobody else handles it: die by the signal, as the default action would have.
    process.kill(process.pid, sig);
  };
  process.on('SIGINT', onSignal);
  process.on('SIGTERM', onSignal);
  process.on('exit', () => {
    for (const lab of live) lab.teardownSync();
  });
}

/**
 * A running netns lab: what `applyNetns` built. Every resource is in the state record from the moment
 * it exists; `teardown()` (or the signal handlers, or `cleanNetns` after a SIGKILL) removes it all.
 */
export class NetnsLab {
  private readonly children = new Set<ChildProcess>();
  private done = false;

  constructor(
    readonly plan: NetnsPlan,
    private readonly record: NetnsRecord,
    private readonly log: (line: string) => void,
  ) {}

  get labId(): string {
    return this.plan.labId;
  }

  /** The planned host, or `E_NETNS_HOST`. */
  host(name: string): PlannedHost {
    const h = this.plan.hosts.find((x) => x.name === name);
    if (!h) {
      const have = this.plan.hosts.map((x) => x.name).join(', ');
      throw new FieldlabError('E_NETNS_HOST', `lab ${this.labId} has no host ${name}`, {
        hint: `hosts: ${have}`,
      });
    }
    return h;
  }

  /** Namespace name of a host (`fl-<labId>-<host>`). */
  ns(host: string): string {
    return this.host(host).ns;
  }

  /** A host's address (no prefix) on a segment, default its first. */
  address(host: string, segment?: string): string {
    const h = this.host(host);
    const i = segment ? h.interfaces.find((x) => x.segment === segment) : h.interfaces[0];
    if (!i) throw new FieldlabError('E_NETNS_HOST', `${host} is not on segment ${segment ?? '(any)'}`);
    return formatIp(i.address.address);
  }

  /** Runs argv inside the host's namespace (`ip netns exec`), with its /etc/netns hosts and resolv.conf. */
  execIn(host: string, argv: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    return run(['ip', 'netns', 'exec', this.ns(host), ...argv], { ...opts, env: opts.env ?? labEnv() });
  }

  /**
   * Starts a long-running process inside the host's namespace (a simulator, a server). Its PID is in
   * the state record; teardown kills it. `ip netns exec` execs, so the PID is the program's own. It
   * gets SIGKILL when the thread that called this dies (see `dieWithParent`).
   */
  spawnIn(host: string, argv: readonly string[], opts: SpawnOptions = {}): ChildProcess {
    this.assertLive();
    const ns = this.ns(host);
    // setpriv and `ip netns exec` exec: the PID is the program's own. It gets SIGKILL when this process
    // dies, so a SIGKILLed owner leaves no wireguard-go or server running (only namespaces, for clean).
    const [cmd, ...args] = dieWithParent(['ip', 'netns', 'exec', ns, ...argv]);
    const child = spawn(cmd as string, args, { stdio: 'pipe', env: labEnv(), ...opts });
    if (child.pid !== undefined) {
      const pid = child.pid;
      this.children.add(child);
      this.record.processes.push({ pid, startTicks: processStartTicks(pid), ns, what: argv.join(' ') });
      this.save();
      child.once('exit', () => {
        this.children.delete(child);
        if (this.done) return;
        this.record.processes = this.record.processes.filter((p) => p.pid !== pid);
        this.save();
      });
    }
    return child;
  }

  /**
   * Binds a listening TCP socket inside the host's namespace and hands it to this process: a helper
   * `node` runs in the namespace, listens on address:port, and sends the socket handle over IPC. Pass
   * the handle to `server.listen(handle)` (or a simulator's `listenHandle` option) to serve in-process
   * on a lab address. Close that server before `teardown()` (an open socket keeps the namespace alive).
   */
  bindIn(host: string, address: string, port: number): Promise<{ handle: object; port: number }> {
    return this.handOver(host, address, port, 'tcp');
  }

  /** The same for UDP: a `dgram.Socket` bound at address:port inside the host's namespace. */
  async bindUdpIn(host: string, address: string, port: number): Promise<{ socket: UdpSocket; port: number }> {
    const { handle, port: bound } = await this.handOver(host, address, port, 'udp');
    return { socket: handle as UdpSocket, port: bound };
  }

  private handOver(
    host: string,
    address: string,
    port: number,
    kind: 'tcp' | 'udp',
  ): Promise<{ handle: object; port: number }> {
    this.assertLive();
    // Node passes a net handle or a dgram.Socket over IPC (the cluster module relies on both).
    const code =
      kind === 'tcp'
        ? [
            "const s = require('net').createServer();",
            "s.on('error', (e) => process.send({ error: e.code + ': ' + e.message }, () => process.exit(1)));",
            's.listen({ host: process.argv[1], port: Number(process.argv[2]) }, () =>',
            '  process.send({ port: s.address().port }, s._handle, () => { s.close(); process.disconnect(); }));',
          ].join('\n')
        : [
            "const s = require('dgram').createSocket(process.argv[1].includes(':') ? 'udp6' : 'udp4');",
            "s.on('error', (e) => process.send({ error: e.code + ': ' + e.message }, () => process.exit(1)));",
            's.bind(Number(process.argv[2]), process.argv[1], () =>',
            '  process.send({ port: s.address().port }, s, () => { s.close(); process.disconnect(); }));',
          ].join('\n');
    const child = spawn(
      'ip',
      ['netns', 'exec', this.ns(host), process.execPath, '-e', code, address, String(port)],
      {
        stdio: ['ignore', 'ignore', 'pipe', 'ipc'],
      },
    );
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    return new Promise((resolve, reject) => {
      let settled = false;
      const fail = (why: string): void => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        child.kill('SIGKILL');
        reject(
          new FieldlabError(
            'E_NETNS_BIND',
            `cannot ${kind === 'tcp' ? 'listen' : 'bind UDP'} on ${address}:${port} in ${host}: ${why}`,
            { hint: `is ${address} one of ${host}'s addresses, and the port free?` },
          ),
        );
      };
      const timer = setTimeout(() => fail('no answer in 10 s'), 10_000);
      child.once('message', (msg: { port?: number; error?: string }, handle: unknown) => {
        if (msg.error || typeof handle !== 'object' || handle === null || msg.port === undefined) {
          fail(msg.error ?? 'no handle');
          return;
        }
        settled = true;
        clearTimeout(timer);
        resolve({ handle, port: msg.port });
      });
      child.once('exit', (c) => fail(`helper exited ${c}: ${stderr.trim()}`));
      child.once('error', (err) => fail(err.message));
    });
  }

  /**
   * Puts other /etc/netns files in place for the programs started in a host from now on (`ip netns exec`
   * bind-mounts them as it execs; processes already running keep theirs), e.g. for a run whose client asks
   * another resolver. Returns what puts the lab's own back. A file is replaced by a rename, never
   * rewritten in place, so the mount of a running process (a simulator on that host) never sees a change.
   */
  replaceNameFiles(host: string, files: { hosts?: string; resolvConf?: string }): () => void {
    this.assertLive();
    const dir = `${this.plan.etcNetns}/${this.ns(host)}`;
    const put = (file: string, content: string): void => {
      const tmp = `${file}.fieldlab-${process.pid}`;
      writeFileSync(tmp, content, { mode: 0o644 });
      renameSync(tmp, file);
    };
    const saved: Array<[string, string]> = [];
    for (const [name, content] of [
      ['hosts', files.hosts],
      ['resolv.conf', files.resolvConf],
    ] as const) {
      if (content === undefined) continue;
      const file = `${dir}/${name}`;
      saved.push([file, readFileSync(file, 'utf8')]);
      put(file, content);
    }
    let restored = false;
    return () => {
      // Torn down: the directory is gone with the lab.
      if (restored || this.done) return;
      restored = true;
      for (const [file, content] of saved) put(file, content);
    };
  }

  /** Counters of the host's `table inet fieldlab`, one per rule and chain. */
  async firewallCounters(host: string): Promise<FirewallCounter[]> {
    const r = await runChecked([
      'ip',
      'netns',
      'exec',
      this.ns(host),
      'nft',
      '-j',
      'list',
      'table',
      'inet',
      'fieldlab',
    ]);
    return parseNftCounters(r.stdout);
  }

  /** Replaces the host's firewall (e.g. a scenario's fixed variant); an empty list removes it. */
  async setFirewall(host: string, rules: readonly FirewallRule[]): Promise<void> {
    const ns = this.ns(host);
    // `table ...` then `delete table ...` is the idempotent way to drop a table that may not exist.
    const reset = 'table inet fieldlab\ndelete table inet fieldlab\n';
    const script = `${reset}${rules.length ? renderNftTable(rules) : ''}`;
    await runChecked(['ip', 'netns', 'exec', ns, 'nft', '-f', '-'], { input: script });
  }

  /** Shapes a host's link with tbf (egress: what it sends; ingress: what it receives). */
  async setBandwidth(
    host: string,
    rate: number | string,
    opts: { segment?: string; direction?: 'egress' | 'ingress' | 'both' } = {},
  ): Promise<void> {
    const h = this.host(host);
    const i = opts.segment ? h.interfaces.find((x) => x.segment === opts.segment) : h.interfaces[0];
    if (!i) throw new FieldlabError('E_NETNS_HOST', `${host} is not on segment ${opts.segment ?? '(any)'}`);
    const dir = opts.direction ?? 'egress';
    if (dir !== 'ingress') await runChecked(['ip', 'netns', 'exec', h.ns, 'tc', ...tbfArgs(i.ifname, rate)]);
    if (dir !== 'egress') {
      await runChecked(['ip', 'netns', 'exec', this.plan.switchNs, 'tc', ...tbfArgs(i.peer, rate)]);
    }
  }

  /**
   * Sets what a host's WireGuard peer carries (`wg set ... allowed-ips`, the seed's fix) and routes it
   * via the tunnel; routes of networks no longer allowed are removed.
   */
  async setAllowedIps(host: string, peerHost: string, allowedIps: readonly string[]): Promise<void> {
    const h = this.host(host);
    if (!h.wgIfname) throw new FieldlabError('E_NETNS_HOST', `${host} has no WireGuard interface`);
    const pub = this.publicKeys.get(peerHost);
    if (!pub)
      throw new FieldlabError('E_NETNS_HOST', `${peerHost} has no WireGuard key in lab ${this.labId}`);
    const nets = allowedIps.map((a, i) => formatCidr(labCidr(a, `allowedIps[${i}]`)));
    const exec = (argv: string[]): Promise<ExecResult> => runChecked(['ip', 'netns', 'exec', h.ns, ...argv]);
    const current = await exec(['wg', 'show', h.wgIfname, 'allowed-ips']);
    const line = current.stdout.split('\n').find((l) => l.startsWith(`${pub}\t`)) ?? '';
    const before = (line.split('\t')[1] ?? '').split(' ').filter((n) => n.includes('/'));
    await exec(['wg', 'set', h.wgIfname, 'peer', pub, 'allowed-ips', nets.join(',')]);
    for (const n of nets) await exec(['ip', 'route', 'replace', n, 'dev', h.wgIfname]);
    for (const n of before.filter((b) => !nets.includes(b))) {
      await run(['ip', '-n', h.ns, 'route', 'del', n, 'dev', h.wgIfname]);
    }
  }

  /** WireGuard public keys per host name (private keys stay in the work dir's 0600 configs). */
  readonly publicKeys = new Map<string, string>();

  /** Removes everything the lab created. Idempotent. */
  async teardown(): Promise<void> {
    this.teardownSync();
  }

  /** Synchronous teardown (signal handlers, `exit`). */
  teardownSync(): void {
    if (this.done) return;
    this.done = true;
    live.delete(this);
    for (const c of this.children) c.kill('SIGTERM');
    teardownRecord(this.record);
    for (const c of this.children) if (c.pid !== undefined && isRunning(c.pid)) c.kill('SIGKILL');
  }

  private assertLive(): void {
    if (this.done) throw new FieldlabError('E_NETNS_STOPPED', `lab ${this.labId} was torn down`);
  }

  private save(): void {
    if (!this.done) saveRecord(this.record);
  }

  /** @internal apply one step, recording what it creates before it exists. */
  async applyStep(step: PlanStep): Promise<void> {
    for (const line of describeForLog(step)) this.log(line);
    switch (step.kind) {
      case 'netns': {
        this.record.namespaces.push(step.ns);
        this.save();
        const r = await run(['ip', 'netns', 'add', step.ns]);
        if (r.exitCode !== 0) {
          this.record.namespaces.pop(); // not ours: never delete someone else's namespace
          this.save();
          throw new FieldlabError(
            'E_NETNS_EXISTS',
            `cannot create namespace ${step.ns}: ${r.stderr.trim()}`,
            {
              hint: 'a lab with this id runs or was killed: run `fieldlab clean`, or pick another id',
            },
          );
        }
        await runChecked(['ip', '-n', step.ns, 'link', 'set', 'lo', 'up']);
        return;
      }
      case 'file': {
        const dir = dirname(step.path);
        if (!dir.startsWith(this.record.workDir) && !this.record.paths.includes(dir)) {
          // A directory we create is removed whole; in an existing one, only our file.
          this.record.paths.push(existsSync(dir) ? step.path : dir);
          this.save();
        }
        mkdirSync(dir, { recursive: true, mode: 0o755 });
        writeFileSync(step.path, step.content, { mode: step.mode ?? 0o644 });
        return;
      }
      case 'ip':
        await runChecked(['ip', '-n', step.ns, '-batch', '-'], { input: `${step.lines.join('\n')}\n` });
        return;
      case 'sysctl':
        await runChecked(['ip', 'netns', 'exec', step.ns, 'sysctl', '-qw', `${step.key}=${step.value}`]);
        return;
      case 'wireguard-go':
        await this.startWireguard(step.ns, step.ifname);
        return;
      case 'wg-setconf':
        await runChecked(['ip', 'netns', 'exec', step.ns, 'wg', 'setconf', step.ifname, step.path]);
        return;
      case 'nft':
        await runChecked(['ip', 'netns', 'exec', step.ns, 'nft', '-f', '-'], { input: step.script });
        return;
      case 'tc':
        await runChecked(['ip', 'netns', 'exec', step.ns, 'tc', ...step.args]);
        return;
    }
  }

  private async startWireguard(ns: string, ifname: string): Promise<void> {
    const sock = `${WG_RUN_DIR}/${ifname}.sock`;
    if (existsSync(sock)) {
      throw new FieldlabError(
        'E_WG_IFNAME_IN_USE',
        `${sock} exists: another namespace uses WireGuard interface ${ifname}`,
        {
          hint: 'UAPI sockets are shared by all namespaces: pick another ifname, or run `fieldlab clean`',
        },
      );
    }
    this.record.wgSockets.push(sock);
    const host = this.plan.hosts.find((h) => h.ns === ns)?.name as string;
    const child = this.spawnIn(host, ['wireguard-go', '-f', ifname], {
      stdio: ['ignore', 'ignore', 'pipe'],
      env: { ...process.env, WG_PROCESS_FOREGROUND: '1', LOG_LEVEL: 'error' },
    });
    let stderr = '';
    child.stderr?.setEncoding('utf8').on('data', (d: string) => (stderr += d));
    // Bounded wait for the UAPI socket (wireguard-go creates it once the TUN device is up).
    const deadline = Date.now() + 5_000;
    while (!existsSync(sock)) {
      if (child.exitCode !== null || Date.now() > deadline) {
        throw new FieldlabError(
          'E_WIREGUARD',
          `wireguard-go ${ifname} did not come up in ${ns}: ${stderr.trim()}`,
          {
            hint: 'needs /dev/net/tun and wireguard-go (apt-get install wireguard-go)',
          },
        );
      }
      await new Promise((r) => setTimeout(r, 20));
    }
  }
}

function describeForLog(step: PlanStep): string[] {
  return step.kind === 'file' ? [`write ${step.path}`] : [`${step.kind} ${'ns' in step ? step.ns : ''}`];
}

/**
 * The environment programs get inside a lab: this process's, without proxy settings (a lab host has
 * only the lab's network; a scenario that wants a proxy sets it explicitly with `env`).
 */
export function labEnv(): NodeJS.ProcessEnv {
  const env = { ...process.env };
  for (const k of Object.keys(env)) if (/^(https?|all|no|ftp)_proxy$/i.test(k)) delete env[k];
  return env;
}

/** Maps `nft -j list table inet fieldlab` output to per-rule counters (rules carry `fl:<index>` comments). */
export function parseNftCounters(json: string): FirewallCounter[] {
  const doc = JSON.parse(json) as { nftables?: Array<Record<string, unknown>> };
  const out: FirewallCounter[] = [];
  for (const item of doc.nftables ?? []) {
    const rule = item.rule as
      | { chain: string; comment?: string; expr?: Array<Record<string, unknown>> }
      | undefined;
    if (!rule?.comment?.startsWith('fl:')) continue;
    let packets = 0;
    let bytes = 0;
    let action = 'accept';
    for (const e of rule.expr ?? []) {
      const c = e.counter as { packets: number; bytes: number } | undefined;
      if (c) {
        packets = c.packets;
        bytes = c.bytes;
      }
      if ('drop' in e) action = 'drop';
      if ('reject' in e) action = 'reject';
    }
    out.push({ index: Number(rule.comment.slice(3)), chain: rule.chain, action, packets, bytes });
  }
  return out;
}

/**
 * `/etc/netns/fl-<lab>-sw/fieldlab-owner.json`: the owner of the lab, readable by every process whatever
 * its FIELDLAB_STATE_DIR, so `cleanNetns` never takes a live lab recorded elsewhere for an orphan.
 */
function writeOwnerFile(plan: NetnsPlan, record: NetnsRecord, etc: string): void {
  const dir = `${etc}/${plan.switchNs}`;
  record.paths.push(dir);
  saveRecord(record);
  mkdirSync(dir, { recursive: true, mode: 0o755 });
  const owner = { pid: record.pid, pidStartTicks: record.pidStartTicks, record: recordPath(record.labId) };
  writeFileSync(`${dir}/${OWNER_FILE}`, `${JSON.stringify(owner)}\n`);
}

async function generateKeys(plan: NetnsPlan): Promise<Map<string, WireguardKeys>> {
  const keys = new Map<string, WireguardKeys>();
  for (const h of plan.topology.hosts) {
    if (!h.wireguard) continue;
    const priv = (await runChecked(['wg', 'genkey'])).stdout.trim();
    const pub = (await runChecked(['wg', 'pubkey'], { input: `${priv}\n` })).stdout.trim();
    keys.set(h.name, { privateKey: priv, publicKey: pub });
  }
  return keys;
}

/**
 * Builds a lab from a topology: plans it (throwing `FieldlabError` for bad input before touching
 * anything), writes the state record, applies every step; on any error rolls back what was created and
 * rethrows. Needs root (or CAP_NET_ADMIN), iproute2, nftables; WireGuard hosts need wireguard-go + wg.
 */
export async function applyNetns(topology: TopologyInput, opts: ApplyOptions = {}): Promise<NetnsLab> {
  const dry = planNetns(topology, { ...(opts.etcNetns ? { etcNetns: opts.etcNetns } : {}) });
  const record = newRecord(dry.labId);
  const existing = readRecord(dry.labId);
  if (existing && isRunning(existing.pid)) {
    throw new FieldlabError('E_NETNS_EXISTS', `netns lab ${dry.labId} is running (pid ${existing.pid})`, {
      hint: 'pick another labId, or stop that lab',
    });
  }
  const keys = await generateKeys(dry);
  const plan = planNetns(topology, {
    workDir: record.workDir,
    keys,
    ...(opts.etcNetns ? { etcNetns: opts.etcNetns } : {}),
  });
  mkdirSync(record.workDir, { recursive: true, mode: 0o700 });
  saveRecord(record);
  writeOwnerFile(plan, record, opts.etcNetns ?? '/etc/netns');
  const lab = new NetnsLab(plan, record, opts.log ?? (() => {}));
  for (const [h, k] of keys) lab.publicKeys.set(h, k.publicKey);
  live.add(lab);
  if (opts.signalHandlers !== false) installHandlers();
  try {
    for (const step of plan.steps) await lab.applyStep(step);
  } catch (err) {
    lab.teardownSync();
    throw err;
  }
  return lab;
}
