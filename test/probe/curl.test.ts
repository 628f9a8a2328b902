import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type CommandResult, runCommand } from '../../harness/clients/command.js';
import { classifyCurl, curlProxyArg, curlTimingArgs, parseCurlTimings } from '../../harness/probe/curl.js';
import { PHASE_NAMES } from '../../harness/probe/phases.js';
import { missing } from '../helpers/capability.js';
import * as f from './fixtures.js';

let dir: string;
let caFile: string;
const pki = () => f.testPki();
const chain = (l: f.Issued) => l.certPem + pki().intermediatePem;

function curl(args: string[], timeoutMs = 10_000): Promise<CommandResult> {
  return runCommand({ argv: ['curl', '-sS', '-o', '/dev/null', ...curlTimingArgs(), ...args], timeoutMs });
}

describe.skipIf(missing('cmd:curl', 'cmd:openssl'))('curl against real servers', () => {
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fieldlab-curl-'));
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, pki().rootPem);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => f.closeAll());

  it('succeeds with monotonic, sensible phases over TLS', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const r = await curl(['--cacert', caFile, `https://localhost:${s.port}/`]);
    expect(classifyCurl(r)).toEqual({ ok: true, detail: 'HTTP 200' });
    const t = parseCurlTimings(r.stdout)!;
    expect(t.httpCode).toBe(200);
    expect(t.viaProxy).toBe(false);
    expect(t.phases.map((p) => p.name)).toEqual(['dns', 'tcp', 'tls', 'first-byte', 'transfer']);
    let prev = 0;
    for (const p of t.phases) {
      expect(p.start).toBeGreaterThanOrEqual(prev);
      expect(p.end!).toBeGreaterThanOrEqual(p.start);
      prev = p.end!;
    }
    expect(prev).toBeCloseTo(t.totalMs, 5);
    expect(t.totalMs).toBeLessThan(r.durationMs);
  });

  it('finds the write-out after a body printed without a newline', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const r = await runCommand({
      argv: ['curl', '-sS', ...curlTimingArgs(), '--cacert', caFile, `https://127.0.0.1:${s.port}/`],
      timeoutMs: 10_000,
    });
    expect(r.stdout.startsWith('ok')).toBe(true);
    expect(parseCurlTimings(r.stdout)?.httpCode).toBe(200);
  });

  it('reports proxy-connect between tcp and first byte through a CONNECT proxy', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const proxy = await f.connectProxy('tunnel');
    const r = await curl([
      '--cacert',
      caFile,
      '-x',
      `http://127.0.0.1:${proxy.port}`,
      `https://localhost:${s.port}/`,
    ]);
    expect(classifyCurl(r).ok).toBe(true);
    const t = parseCurlTimings(r.stdout)!;
    expect(t.httpConnect).toBe(200);
    expect(t.viaProxy).toBe(true);
    expect(t.phases.map((p) => p.name)).toEqual(['dns', 'tcp', 'proxy-connect', 'first-byte', 'transfer']);
    expect(proxy.connects).toEqual([`localhost:${s.port}`]);
  });

  it('splits the CONNECT from the TLS handshake with a --trace-time stderr', async () => {
    const s = await f.tlsServer(chain(pki().good), pki().good.keyPem);
    const proxy = await f.connectProxy('tunnel');
    const r = await runCommand({
      argv: [
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        ...curlTimingArgs({ trace: true }),
        '--cacert',
        caFile,
        '-x',
        `http://127.0.0.1:${proxy.port}`,
        `https://localhost:${s.port}/`,
      ],
      timeoutMs: 10_000,
    });
    expect(classifyCurl(r).ok).toBe(true);
    const t = parseCurlTimings(r.stdout, r.stderr)!;
    expect(t.tunnelSplit).toBe(true);
    expect(t.phases.map((p) => p.name)).toEqual([
      'dns',
      'tcp',
      'proxy-connect',
      'tls',
      'first-byte',
      'transfer',
    ]);
    const pc = t.phases[2]!;
    const tls = t.phases[3]!;
    expect(pc.end!).toBeGreaterThan(pc.start);
    expect(tls.start).toBe(pc.end);
    expect(tls.end!).toBeGreaterThan(tls.start);
    expect(tls.end).toBeCloseTo(Number(t.raw.time_appconnect) * 1000, 5);
  });

  const cases: [string, () => Promise<string[]>, string, string?][] = [
    ['refused port', async () => [`http://127.0.0.1:${await f.refusedPort()}/`], 'tcp.refused', 'tcp'],
    [
      'a server that never answers',
      async () => ['--max-time', '1', `http://127.0.0.1:${(await f.tcpServer()).port}/`],
      'tcp.timeout',
      'first-byte',
    ],
    ['a server that resets', async () => [`http://127.0.0.1:${(await f.resetServer()).port}/`], 'tcp.reset'],
    [
      'a TLS server that resets',
      async () => [`https://127.0.0.1:${(await f.resetServer()).port}/`],
      'tcp.reset',
      'tls',
    ],
    ['an unknown name', async () => ['http://no-such-host.invalid/'], 'dns.nxdomain', 'dns'],
    [
      'HTTP 404 with --fail',
      async () => ['--fail', `http://127.0.0.1:${await f.httpServer(404)}/`],
      'http.status',
    ],
    [
      'TLS to a plain HTTP port',
      async () => [`https://127.0.0.1:${await f.httpServer()}/`],
      'tls.handshake',
      'tls',
    ],
    [
      'an untrusted root',
      async () => [
        '--cacert',
        caFile,
        `https://localhost:${(await f.tlsServer(pki().untrusted.certPem + pki().otherRootPem, pki().untrusted.keyPem)).port}/`,
      ],
      'tls.untrusted-root',
      'tls',
    ],
    [
      'no trust for the lab root',
      async () => [`https://localhost:${(await f.tlsServer(chain(pki().good), pki().good.keyPem)).port}/`],
      'tls.untrusted-root',
    ],
    [
      'a wrong host name',
      async () => [
        '--cacert',
        caFile,
        `https://localhost:${(await f.tlsServer(chain(pki().wrongName), pki().wrongName.keyPem)).port}/`,
      ],
      'tls.hostname-mismatch',
    ],
    [
      'an expired certificate',
      async () => [
        '--cacert',
        caFile,
        `https://localhost:${(await f.tlsServer(chain(pki().expired), pki().expired.keyPem)).port}/`,
      ],
      'tls.expired',
    ],
    [
      'a certificate not yet valid',
      async () => [
        '--cacert',
        caFile,
        `https://localhost:${(await f.tlsServer(chain(pki().notYetValid), pki().notYetValid.keyPem)).port}/`,
      ],
      'tls.not-yet-valid',
    ],
    [
      'a proxy answering 407',
      async () => ['-x', `http://127.0.0.1:${(await f.connectProxy(407)).port}`, 'https://localhost:1/'],
      'proxy.auth-required',
      'proxy-connect',
    ],
    [
      'a proxy answering 403',
      async () => ['-x', `http://127.0.0.1:${(await f.connectProxy(403)).port}`, 'https://localhost:1/'],
      'proxy.connect-denied',
      'proxy-connect',
    ],
    [
      'a proxy answering 502',
      async () => ['-x', `http://127.0.0.1:${(await f.connectProxy(502)).port}`, 'https://localhost:1/'],
      'proxy.bad-gateway',
    ],
    [
      'wrong credentials for the proxy',
      async () => [
        '-x',
        `http://u:wrong@127.0.0.1:${(await f.connectProxy('tunnel', { user: 'u', pass: 'p' })).port}`,
        'https://localhost:1/',
      ],
      'proxy.auth-required',
    ],
    [
      'a proxy that is down',
      async () => ['-x', `http://127.0.0.1:${await f.refusedPort()}`, 'https://localhost:1/'],
      'proxy.unreachable',
      'tcp',
    ],
    [
      'https:// to a plain HTTP proxy',
      async () => [
        '--proxy-insecure',
        '-x',
        `https://127.0.0.1:${(await f.connectProxy('tunnel')).port}`,
        'https://localhost:1/',
      ],
      'proxy.scheme-mismatch',
    ],
    [
      'http:// to a TLS-only proxy',
      async () => {
        const tlsPort = (await f.tlsServer(chain(pki().good), pki().good.keyPem)).port;
        return ['-x', `http://127.0.0.1:${tlsPort}`, 'https://localhost:1/'];
      },
      'proxy.scheme-mismatch',
    ],
  ];

  it.each(cases)('classifies %s', async (_name, args, cls, phase) => {
    const r = await curl(await args());
    const v = classifyCurl(r);
    expect(v.ok).toBe(false);
    if (!v.ok) {
      expect(v.class).toBe(cls);
      expect(v.detail).toMatch(/^curl exit \d+: |^HTTP \d{3}/);
    }
    const t = parseCurlTimings(r.stdout)!;
    expect(t.exitCode).toBe(r.exitCode);
    for (const p of t.phases) expect(PHASE_NAMES).toContain(p.name);
    if (phase) {
      const open = t.phases.at(-1)!;
      expect(open.name).toBe(phase);
      if (phase !== 'first-byte') expect(open.end).toBeUndefined();
    }
  });

  it('a curl killed at the deadline is client.timeout; a missing curl is client.error', async () => {
    const hang = await f.tcpServer();
    const r = await curl([`http://127.0.0.1:${hang.port}/`], 300);
    expect(r.timedOut).toBe(true);
    expect(parseCurlTimings(r.stdout)).toBeUndefined();
    expect(classifyCurl(r)).toMatchObject({ ok: false, class: 'client.timeout' });
    const gone = await runCommand({ argv: ['fieldlab-no-curl'], timeoutMs: 1000 });
    expect(classifyCurl(gone)).toMatchObject({ ok: false, class: 'client.error' });
  });
});

describe('curl helpers', () => {
  it('finds the proxy in any spelling', () => {
    expect(curlProxyArg(['curl', '-x', 'http://p:1', 'u'])).toBe('http://p:1');
    expect(curlProxyArg(['curl', '--proxy', 'http://p:2'])).toBe('http://p:2');
    expect(curlProxyArg(['curl', '--proxy=http://p:3'])).toBe('http://p:3');
    expect(curlProxyArg(['curl', '-xhttp://p:4'])).toBe('http://p:4');
    expect(curlProxyArg(['curl', 'u'])).toBeUndefined();
  });

  it('uses the context proxy to tell a dead proxy from a dead target', () => {
    const r: CommandResult = {
      argv: ['curl', 'https://t/'],
      exitCode: 7,
      signal: null,
      stdout: '',
      stderr: "curl: (7) Failed to connect to 127.0.0.5 port 3128 after 0 ms: Couldn't connect to server\n",
      durationMs: 1,
      timedOut: false,
    };
    expect(classifyCurl(r, { proxy: 'http://127.0.0.5:3128' })).toMatchObject({ class: 'proxy.unreachable' });
    expect(classifyCurl(r, { proxy: 'http://127.0.0.5:8080' })).toMatchObject({ class: 'tcp.refused' });
  });

  it('reads the older "Received HTTP code 407 from proxy after CONNECT" wording', () => {
    const r: CommandResult = {
      argv: ['curl'],
      exitCode: 56,
      signal: null,
      stdout: '',
      stderr: 'curl: (56) Received HTTP code 407 from proxy after CONNECT\n',
      durationMs: 1,
      timedOut: false,
    };
    expect(classifyCurl(r)).toMatchObject({ class: 'proxy.auth-required' });
  });

  it('returns undefined for output without timings', () => {
    expect(parseCurlTimings('hello\n')).toBeUndefined();
  });
});
