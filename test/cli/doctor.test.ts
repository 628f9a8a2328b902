import { X509Certificate } from 'node:crypto';
import { existsSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import type { DoctorCheck, DoctorReport } from '../../harness/doctor/index.js';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import type { RunResult } from '../../harness/runner/result.js';
import { assertBuilt, cli } from '../helpers/cli.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * `fieldlab doctor` against a lab that stands for a site (loopback): the lab DNS answers the names
 * (one with SERVFAIL), one endpoint refuses, one drops, a proxy wants credentials and allows CONNECT to
 * 443 only, an inspector re-signs TLS. Only lab names and loopback addresses are ever contacted.
 */

const stateDir = useTempStateDir('fl-doctor-');
let lab: Lab;
let dns: string;
let ca: string;
const port = (sim: string) => lab.sim(sim).endpoints[0]!.port;

beforeAll(async () => {
  assertBuilt();
  lab = await startLab({
    name: 'doctor',
    simulators: [
      {
        name: 'dns',
        type: 'geo-dns',
        host: 'ns1.iot.example.com',
        options: { faults: { 'flaky.iot.example.com': 'servfail' } },
      },
      {
        // Another resolver of the site, with its own answer for api (a documentation address, never contacted).
        name: 'dns2',
        type: 'geo-dns',
        host: 'ns2.iot.example.com',
        options: {
          zones: [
            {
              origin: 'iot.example.com',
              soa: { mname: 'ns2.iot.example.com', rname: 'hostmaster.iot.example.com', minimum: 60 },
              records: [{ name: 'api', type: 'A', value: '198.51.100.20' }],
            },
          ],
        },
      },
      { name: 'api', type: 'https-server', host: 'api.iot.example.com' },
      { name: 'blocked', type: 'https-server', host: 'blocked.iot.example.com' },
      { name: 'dropped', type: 'https-server', host: 'dropped.iot.example.com' },
      {
        name: 'proxy',
        type: 'connect-proxy',
        host: 'proxy.corp.example.com',
        options: {
          users: [{ username: 'edge@corp', password: 'p@ss' }],
          map: {
            'api.iot.example.com:443': '${api.address}:${api.port}',
            'blocked.iot.example.com:443': '${blocked.address}:${blocked.port}',
          },
        },
      },
      {
        name: 'inspector',
        type: 'tls-inspector',
        host: 'inspector.corp.example.com',
        options: { map: { 'api.iot.example.com:443': '${api.address}:${api.port}' } },
      },
    ],
  });
  lab.relay('blocked').addToxic({ type: 'refuse' });
  lab.relay('dropped').addToxic({ type: 'blackhole' });
  dns = lab.dnsServer()!;
  ca = lab.pki.trust.bundlePath;
});
afterAll(async () => {
  await lab?.stop();
});

async function doctor(args: string[]) {
  const r = await cli(['doctor', '--dns-server', dns, '--timeout', '1500', ...args], {
    env: { FIELDLAB_STATE_DIR: stateDir(), https_proxy: '', HTTPS_PROXY: '' },
  });
  return { ...r, report: r.stdout.startsWith('{') ? (JSON.parse(r.stdout) as DoctorReport) : undefined };
}

const find = (report: DoctorReport | undefined, check: string, host: string, p?: number): DoctorCheck => {
  const c = report?.checks.find(
    (x) => x.check === check && x.host === host && (p === undefined || x.port === p),
  );
  if (!c) throw new Error(`no ${check} check for ${host}:${p}: ${JSON.stringify(report?.checks)}`);
  return c;
};

describe('fieldlab doctor (loopback lab as the site)', () => {
  it('a clean path: DNS from the lab resolver, TCP, a trusted chain; exit 0', async () => {
    const r = await doctor(['--endpoint', `api.iot.example.com:${port('api')}`, '--ca', ca, '--json']);
    expect(r.code, r.stdout + r.stderr).toBe(0);
    expect(r.report?.ok).toBe(true);
    const d = find(r.report, 'dns', 'api.iot.example.com');
    expect(d.details?.addresses).toEqual([
      expect.objectContaining({ address: lab.hosts.get('api.iot.example.com') }),
    ]);
    expect(d.summary).toContain(`from ${dns}`);
    expect(find(r.report, 'tcp', 'api.iot.example.com').ok).toBe(true);
    const tls = find(r.report, 'tls', 'api.iot.example.com');
    expect(tls.ok).toBe(true);
    expect(tls.summary).toMatch(/\(trusted\)$/);
    // The lab's server sends Date: this machine's own clock against itself.
    expect(find(r.report, 'clock', 'api.iot.example.com').ok).toBe(true);
  });

  it('compares the answers of several resolvers, and connects to the first one’s', async () => {
    const dns2 = lab.sim('dns2').endpoints.find((e) => e.name === 'dns-udp')!;
    const r = await doctor([
      '--dns-server',
      `${dns2.host}:${dns2.port}`,
      '--endpoint',
      `api.iot.example.com:${port('api')}`,
      '--ca',
      ca,
      '--json',
    ]);
    expect(r.code, r.stdout).toBe(0);
    const answers = r.report?.checks.filter((c) => c.check === 'dns') ?? [];
    expect(answers).toHaveLength(2);
    expect(answers[1]).toMatchObject({
      ok: true,
      details: { differs: true, resolver: `${dns2.host}:${dns2.port}` },
    });
    expect(answers[1]!.summary).toContain('198.51.100.20');
    expect(answers[1]!.summary).toContain('a different answer');
    expect(find(r.report, 'tcp', 'api.iot.example.com').details?.address).toBe(
      lab.hosts.get('api.iot.example.com'),
    );
  });

  it('tells refused from dropped, and SERVFAIL, each with a fix; exit 1', async () => {
    const r = await doctor([
      '--endpoint',
      `blocked.iot.example.com:${port('blocked')}`,
      '--endpoint',
      `dropped.iot.example.com:${port('dropped')}`,
      '--endpoint',
      'flaky.iot.example.com:443',
      '--ca',
      ca,
      '--json',
    ]);
    expect(r.code).toBe(1);
    const refused = find(r.report, 'tcp', 'blocked.iot.example.com');
    expect(refused).toMatchObject({ ok: false, details: { outcome: 'refused' } });
    expect(refused.hint).toContain(`open outbound TCP ${port('blocked')}`);
    // On loopback a blackholed port takes the connection (a userspace relay) and holds it: the TLS
    // handshake is what never finishes.
    const held = find(r.report, 'tls', 'dropped.iot.example.com');
    expect(held).toMatchObject({ ok: false });
    expect(held.summary).toContain('no handshake');
    const servfail = find(r.report, 'dns', 'flaky.iot.example.com');
    expect(servfail).toMatchObject({ ok: false, details: { error: 'SERVFAIL' } });
    expect(servfail.hint).toMatch(/SERVFAIL/);
  });

  it('through the proxy: CONNECT allowed on 443 and denied on 8883, the chain checked through the tunnel', async () => {
    const proxy = `http://edge%40corp:p%40ss@proxy.corp.example.com:${port('proxy')}`;
    const r = await doctor([
      '--proxy',
      proxy.replace('proxy.corp.example.com', lab.hosts.get('proxy.corp.example.com')!),
      '--endpoint',
      'api.iot.example.com:443',
      '--endpoint',
      'api.iot.example.com:8883',
      '--ca',
      ca,
      '--json',
    ]);
    expect(r.code).toBe(1);
    expect(r.report?.proxy).not.toContain('p%40ss');
    expect(find(r.report, 'proxy', 'api.iot.example.com', 443).ok).toBe(true);
    expect(find(r.report, 'tls', 'api.iot.example.com', 443).ok).toBe(true);
    const denied = find(r.report, 'proxy', 'api.iot.example.com', 8883);
    expect(denied).toMatchObject({ ok: false, details: { outcome: 'denied', status: 403 } });
    expect(denied.hint).toContain('MQTT over WebSocket on 443');
  });

  it('a proxy that wants credentials, and a proxy URL with the wrong scheme', async () => {
    const at = `${lab.hosts.get('proxy.corp.example.com')}:${port('proxy')}`;
    const none = await doctor(['--proxy', `http://${at}`, '--endpoint', 'api.iot.example.com:443', '--json']);
    const c = find(none.report, 'proxy', 'api.iot.example.com', 443);
    expect(c).toMatchObject({ ok: false, details: { outcome: 'auth-required', status: 407 } });
    expect(c.hint).toContain('http://user:pass@proxy:port');

    const wrong = await doctor([
      '--proxy',
      `http://edge%40corp:nope@${at}`,
      '--endpoint',
      'api.iot.example.com:443',
      '--json',
    ]);
    expect(find(wrong.report, 'proxy', 'api.iot.example.com', 443).details?.outcome).toBe('auth-rejected');

    const tls = await doctor(['--proxy', `https://${at}`, '--endpoint', 'api.iot.example.com:443', '--json']);
    const scheme = find(tls.report, 'proxy', 'api.iot.example.com', 443);
    expect(scheme).toMatchObject({ ok: false, details: { outcome: 'wrong-scheme' } });
    expect(scheme.summary).toContain('the proxy URL needs http://');
  });

  it('names the TLS inspection by its root, with the root fingerprint, in the human report', async () => {
    const at = `${lab.hosts.get('inspector.corp.example.com')}:${port('inspector')}`;
    const r = await doctor(['--proxy', `http://${at}`, '--endpoint', 'api.iot.example.com:443', '--ca', ca]);
    expect(r.code).toBe(1);
    expect(r.stdout).toContain('✗ TLS 443: TLS inspection by fieldlab Inspection Root CA');
    // The inspector sends its intermediate, not its root: the intermediate's fingerprint stands for it.
    const json = await doctor([
      '--proxy',
      `http://${at}`,
      '--endpoint',
      'api.iot.example.com:443',
      '--ca',
      ca,
      '--json',
    ]);
    const tls = find(json.report, 'tls', 'api.iot.example.com', 443);
    const chain = tls.details?.chain as Array<{ pem: string; fingerprint256: string }>;
    const top = new X509Certificate(chain[chain.length - 1]!.pem);
    const root = new X509Certificate(readFileSync(lab.resolveRef('inspector.rootCa'), 'utf8'));
    expect(top.verify(root.publicKey)).toBe(true);
    expect(r.stdout).toContain(`SHA-256 ${top.fingerprint256}`);
    expect(r.stdout).toMatch(/ {6}fix: add fieldlab Inspection Root CA's root to the device's trust store/);
    expect(r.stdout).toMatch(/✓ CONNECT api\.iot\.example\.com:443 via http:\/\/.*: allowed/);
  });

  it('without an endpoint it is a usage error (exit 2)', async () => {
    const r = await cli(['doctor'], { env: { FIELDLAB_STATE_DIR: stateDir() } });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('doctor needs at least one endpoint');
    const bad = await cli(['doctor', '--endpoint', 'no-port'], { env: { FIELDLAB_STATE_DIR: stateDir() } });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('--endpoint no-port: expected host:port');
  });
});

describe('fieldlab doctor --emit-scenario: the site, reproduced in the lab', () => {
  const validate = new Ajv2020({ strict: false, allErrors: true }).compile(
    JSON.parse(readFileSync('scenarios/schema.json', 'utf8')),
  );

  /** Runs doctor with --emit-scenario, then `fieldlab run` on what it wrote: variant → observed class. */
  async function emitAndRun(file: string, args: string[]): Promise<Record<string, string>> {
    const out = join(stateDir(), file);
    const r = await doctor([...args, '--emit-scenario', out]);
    expect(r.code, r.stderr).toBe(1);
    expect(existsSync(out)).toBe(true);
    expect(validate(parse(readFileSync(out, 'utf8'))), JSON.stringify(validate.errors)).toBe(true);
    const dir = join(stateDir(), `${file}-report`);
    const run = await cli(['run', out, '--reporter', 'json', '--out', dir], {
      env: { FIELDLAB_STATE_DIR: stateDir() },
      timeoutMs: 120_000,
    });
    const report = JSON.parse(readFileSync(join(dir, 'fieldlab-report.json'), 'utf8')) as RunResult;
    expect(
      report.results.filter((v) => v.status !== 'passed'),
      run.stdout,
    ).toEqual([]);
    return Object.fromEntries(
      report.results.map((v) => [v.variant, v.observed?.class ?? v.observed?.result ?? '?']),
    );
  }

  it('a refused and a dropped port: the same classes in the lab, and the fix passes', async () => {
    const seen = await emitAndRun('direct.yaml', [
      '--endpoint',
      `api.iot.example.com:${port('api')}`,
      '--endpoint',
      `blocked.iot.example.com:${port('blocked')}`,
      '--endpoint',
      `dropped.iot.example.com:${port('dropped')}`,
      '--ca',
      ca,
    ]);
    expect(seen).toEqual({
      [`broken-ep2-${port('blocked')}`]: 'tcp.refused',
      [`broken-ep3-${port('dropped')}`]: 'tcp.timeout',
      fixed: 'pass',
    });
  });

  it("the proxy's credentials and port policy, and a target it cannot reach", async () => {
    const at = `${lab.hosts.get('proxy.corp.example.com')}:${port('proxy')}`;
    const out = join(stateDir(), 'proxied.yaml');
    const seen = await emitAndRun('proxied.yaml', [
      '--proxy',
      `http://edge%40corp:p%40ss@${at}`,
      '--endpoint',
      'api.iot.example.com:443',
      '--endpoint',
      'api.iot.example.com:8883',
      '--endpoint',
      'blocked.iot.example.com:443',
      '--ca',
      ca,
    ]);
    expect(seen).toEqual({
      'broken-ep1-8883': 'proxy.connect-denied',
      'broken-ep2-443': 'proxy.bad-gateway',
      fixed: 'pass',
    });
    const text = readFileSync(out, 'utf8');
    expect(text).not.toContain('p@ss');
    expect(text).not.toContain('p%40ss');
    expect(text).toContain('username: edge@corp');
  });

  it('TLS inspection: the device fails on the inspection root until it trusts it', async () => {
    const at = `${lab.hosts.get('inspector.corp.example.com')}:${port('inspector')}`;
    const seen = await emitAndRun('inspected.yaml', [
      '--proxy',
      `http://${at}`,
      '--endpoint',
      'api.iot.example.com:443',
      '--ca',
      ca,
    ]);
    expect(seen).toEqual({ 'broken-ep1-443': 'tls.untrusted-root', fixed: 'pass' });
  });
});
