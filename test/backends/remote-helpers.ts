import { type ChildProcess, spawn } from 'node:child_process';
import { request } from 'node:https';
import { connect } from 'node:net';
import type { NamespaceSpawner } from '../../harness/backends/remote/worker-process.js';

/**
 * Runs a worker in this process's own network namespace (the root one): `startWorkerProcess` as the
 * netns backend uses it, minus `ip netns exec`, so the protocol is tested without root.
 */
export function hereSpawner(): NamespaceSpawner & { children: ChildProcess[] } {
  const children: ChildProcess[] = [];
  return {
    children,
    spawnIn(_host, argv, opts = {}) {
      const [cmd, ...args] = argv;
      const child = spawn(cmd as string, args, { stdio: 'pipe', ...opts });
      children.push(child);
      return child;
    },
    address: () => '127.0.0.1',
  };
}

/** A TCP connection to host:port: 'ok' once connected, else the error code (ECONNREFUSED...). Bounded. */
export function tcpOutcome(host: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host, port, timeout: 5_000 });
    s.once('connect', () => {
      s.end();
      resolve('ok');
    });
    s.once('timeout', () => {
      s.destroy();
      resolve('timeout');
    });
    s.once('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
  });
}

/** An HTTPS GET trusting only `ca`: the status, or the error code. Bounded. */
export function httpsStatus(
  host: string,
  port: number,
  servername: string,
  ca: string,
): Promise<number | string> {
  return new Promise((resolve) => {
    const req = request({ host, port, servername, ca, path: '/', agent: false, timeout: 5_000 }, (res) => {
      res.resume();
      resolve(res.statusCode ?? 0);
    });
    req.on('timeout', () => req.destroy(Object.assign(new Error('timeout'), { code: 'ETIMEDOUT' })));
    req.on('error', (err: NodeJS.ErrnoException) => resolve(err.code ?? 'error'));
    req.end();
  });
}

/** Whether a process runs (signal 0). */
export function alive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

/** Collects the requests a relay registers, as a lab's `trackFault`/`faultsApplied` would. */
export function faultLog() {
  const pending: Promise<void>[] = [];
  return {
    trackFault(p: Promise<void>) {
      pending.push(p);
      p.catch(() => undefined);
    },
    async applied(): Promise<void> {
      await Promise.all(pending.splice(0));
    },
  };
}
