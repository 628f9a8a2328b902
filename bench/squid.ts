/**
 * Debian's Squid on loopback with a generated config: the reference the lab proxy is measured against
 * (bench/connect-proxy.ts) and compared with at the wire (test/connect-proxy/squid-407.test.ts).
 * No cache, CONNECT only to `allowPorts` (Squid's SSL_ports), and with `users` Basic authentication
 * through Squid's own `basic_ncsa_auth` helper (RFC 7617), as a corporate Squid is set up.
 */
import { type ChildProcess, execFileSync, spawn } from 'node:child_process';
import { once } from 'node:events';
import { chmodSync, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { type AddressInfo, connect, createServer } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

export const SQUID = '/usr/sbin/squid';
export const SQUID_NCSA_AUTH = '/usr/lib/squid/basic_ncsa_auth';

export interface SquidOptions {
  /** Default 127.0.0.1. */
  host?: string;
  /** CONNECT only to these ports. */
  allowPorts: number[];
  /** Require Basic proxy authentication with these users. */
  users?: ReadonlyArray<{ username: string; password: string }>;
  /** `auth_param basic realm` (default `fieldlab`). */
  realm?: string;
}

export interface SquidHandle {
  host: string;
  port: number;
  /** Squid's process (`-N`: no workers), for its CPU time. */
  pid: number;
  stop(): Promise<void>;
}

/** Starts Squid (`-N`, one worker) and resolves once its port answers; throws with its log if it dies. */
export async function startSquid(opts: SquidOptions): Promise<SquidHandle> {
  const host = opts.host ?? '127.0.0.1';
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-squid-'));
  // Squid started as root drops to its effective user (proxy), which must write its logs here.
  chmodSync(dir, 0o777);
  const port = await freePort(host);
  const auth: string[] = [];
  if (opts.users) {
    const passwd = join(dir, 'passwd');
    // MD5-crypt ($1$), which basic_ncsa_auth reads; the openssl CLI makes it without htpasswd.
    const lines = opts.users.map(
      (u) =>
        `${u.username}:${execFileSync('openssl', ['passwd', '-1', '-stdin'], { input: u.password }).toString().trim()}`,
    );
    writeFileSync(passwd, `${lines.join('\n')}\n`, { mode: 0o644 });
    auth.push(
      `auth_param basic program ${SQUID_NCSA_AUTH} ${passwd}`,
      'auth_param basic children 1',
      `auth_param basic realm ${opts.realm ?? 'fieldlab'}`,
      'acl authed proxy_auth REQUIRED',
    );
  }
  const conf = join(dir, 'squid.conf');
  writeFileSync(
    conf,
    [
      `http_port ${host}:${port}`,
      'workers 1',
      'cache deny all',
      'cache_mem 0 MB',
      `acl SSL_ports port ${opts.allowPorts.join(' ')}`,
      'acl CONNECT method CONNECT',
      ...auth,
      'http_access deny CONNECT !SSL_ports',
      ...(opts.users ? ['http_access deny !authed'] : []),
      'http_access allow all',
      `pid_filename ${join(dir, 'squid.pid')}`,
      `cache_log ${join(dir, 'cache.log')}`,
      'access_log none',
      'cache_store_log none',
      'netdb_filename none',
      `coredump_dir ${dir}`,
      'shutdown_lifetime 0 seconds',
      'pinger_enable off',
      '',
    ].join('\n'),
  );
  const child: ChildProcess = spawn(SQUID, ['-N', '-f', conf], { stdio: 'ignore' });
  const stop = async () => {
    if (child.exitCode === null && child.pid !== undefined) {
      child.kill('SIGKILL');
      await Promise.race([once(child, 'exit'), new Promise((r) => setTimeout(r, 5000).unref())]);
    }
    rmSync(dir, { recursive: true, force: true });
  };
  const deadline = Date.now() + 15_000;
  while (!(await answers(host, port))) {
    if (child.exitCode !== null || Date.now() > deadline) {
      const log = existsSync(join(dir, 'cache.log'))
        ? readFileSync(join(dir, 'cache.log'), 'utf8').slice(-600)
        : '';
      await stop();
      throw new Error(`squid did not start (exit ${child.exitCode}): ${log}`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  return { host, port, pid: child.pid ?? 0, stop };
}

function answers(host: string, port: number): Promise<boolean> {
  return new Promise((res) => {
    const s = connect(port, host);
    s.once('connect', () => {
      s.destroy();
      res(true);
    });
    s.once('error', () => res(false));
  });
}

function freePort(host: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = createServer();
    s.once('error', reject);
    s.listen(0, host, () => {
      const { port } = s.address() as AddressInfo;
      s.close(() => resolve(port));
    });
  });
}
