import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { dnsScenarioPath } from '../../harness/cli/doctor.js';
import { emitScenario } from '../../harness/doctor/emit.js';
import { type DoctorOptions, runDoctor } from '../../harness/doctor/index.js';
import { startRelay } from '../../harness/faults/relay.js';
import { startLab } from '../../harness/lab/lab.js';
import type { FieldlabError } from '../../simulators/common/errors.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { start as startInspector } from '../../simulators/tls-inspector/index.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli } from '../helpers/cli.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { find, httpsEndpoint, nameServer, reproduce } from './helpers.js';

/**
 * doctor against sites built on loopback from simulators started directly: an inspecting proxy whose
 * root has the site's own name, a path that drops large packets, and a resolver that fails names. Each
 * time doctor must find the condition, and the scenario it emits must reproduce it in a lab (the same
 * class per broken variant, the fix passing). Only loopback addresses are contacted; DNS only the
 * site's own name server on loopback (never the system's).
 */

const stateDir = useTempStateDir('fl-doctor-site-');
let pki: PkiHandle;
const stops: Array<() => Promise<void>> = [];

beforeAll(async () => {
  assertBuilt();
  pki = await startPki();
  stops.push(() => pki.stop());
});
afterAll(async () => {
  for (const stop of stops.reverse()) await stop();
});

const https443 = { port: 443, tls: true, https: true };

describe('an inspecting proxy: its root subject goes into the lab', () => {
  it('tls-inspector makes its root under rootName, and refuses rootName with its own ca', async () => {
    const own = await startInspector({ rootName: 'Contoso Inspection Root CA' });
    stops.push(() => own.stop());
    const root = new X509Certificate(own.rootPem);
    expect(root.subject).toContain('CN=Contoso Inspection Root CA');
    expect(own.ca.commonName).toBe('Contoso Inspection Root CA Intermediate');
    await expect(startInspector({ ca: own.ca, rootName: 'x' })).rejects.toThrow(
      expect.objectContaining<Partial<FieldlabError>>({ code: 'E_BAD_OPTION' }),
    );
  });

  it('doctor names the root and its intermediate, and the emitted inspector carries both names', async () => {
    const api = await httpsEndpoint(pki, 'api', ['api.site.example']);
    stops.push(() => api.stop());
    const inspector = await startInspector({
      rootName: 'Contoso Inspection Root CA',
      intermediateName: 'Contoso Issuing CA 2',
      upstreamCa: [pki.root.certPem],
      map: { 'api.site.example:443': `127.0.0.1:${api.endpoints[0]!.port}` },
    });
    stops.push(() => inspector.stop());
    const o: DoctorOptions = {
      targets: [{ host: 'api.site.example', ports: [https443], role: 'endpoint' }],
      proxy: new URL(inspector.proxyUrl()),
      // Behind a proxy the proxy resolves: a name server where nothing listens keeps DNS on loopback.
      dnsServer: '127.0.0.1:9',
      ca: [pki.root.certPem],
      timeoutMs: 3_000,
    };
    const report = await runDoctor(o);
    const tls = find(report, 'tls', 'api.site.example', 443);
    expect(tls).toMatchObject({
      ok: false,
      details: { inspectedBy: 'Contoso Inspection Root CA', inspectedVia: 'Contoso Issuing CA 2' },
    });
    expect(tls.summary).toContain('TLS inspection by Contoso Inspection Root CA');
    const emitted = emitScenario(report, o, 'contoso');
    const sim = emitted.lab.simulators.find((s) => s.type === 'tls-inspector');
    expect(sim?.options).toMatchObject({
      rootName: 'Contoso Inspection Root CA',
      intermediateName: 'Contoso Issuing CA 2',
    });

    // The lab's inspector presents a root with that subject (a lab key: not the site's certificate).
    const lab = await startLab({ name: 'contoso', simulators: emitted.lab.simulators });
    stops.push(() => lab.stop());
    const root = new X509Certificate(readFileSync(lab.resolveRef('inspector.rootCa'), 'utf8'));
    expect(root.subject.split('\n')).toContain('CN=Contoso Inspection Root CA');
    expect(root.fingerprint256).not.toBe(new X509Certificate(inspector.rootPem).fingerprint256);
    await lab.stop();

    // And the device's trust failure reproduces; trusting that root fixes it.
    const seen = await reproduce(stateDir(), report, o, 'contoso');
    expect(seen).toEqual({ 'broken-ep1-443': 'tls.untrusted-root', fixed: 'pass' });
  }, 90_000);
});

describe('a path that drops large packets (PMTU black hole)', () => {
  it('doctor finds the stalled large record; the emitted mtu_blackhole fails the same way, the fix passes', async () => {
    const api = await httpsEndpoint(pki, 'api', ['api.site.example']);
    stops.push(() => api.stop());
    const relay = await startRelay({
      name: 'site-path',
      listen: { host: '127.0.0.1', port: 0 },
      upstream: { host: '127.0.0.1', port: api.endpoints[0]!.port },
      toxics: [{ type: 'mtu_blackhole', mtu: 1400, stream: 'upstream' }],
    });
    stops.push(() => relay.stop());
    const dns = await nameServer({ 'api.site.example': '127.0.0.1' });
    stops.push(() => dns.stop());
    const port = relay.endpoint.port;
    const o: DoctorOptions = {
      targets: [{ host: 'api.site.example', ports: [{ port, tls: true, https: true }], role: 'endpoint' }],
      dnsServer: `127.0.0.1:${dns.endpoints[0]!.port}`,
      ca: [pki.root.certPem],
      timeoutMs: 2_000,
    };
    const report = await runDoctor(o);
    expect(find(report, 'tls', 'api.site.example', port).ok).toBe(true);
    const mtu = find(report, 'mtu', 'api.site.example', port);
    expect(mtu).toMatchObject({ ok: false, details: { answered: false } });
    expect(mtu.summary).toContain('PMTU black hole');
    expect(mtu.hint).toMatch(/fragmentation needed/);
    expect(report.ok).toBe(false);

    const seen = await reproduce(stateDir(), report, o, 'mtu-site');
    expect(seen).toEqual({ [`broken-ep1-${port}`]: 'tcp.timeout', fixed: 'pass' });
  }, 90_000);

  it('on a clean path the large record is answered', async () => {
    const api = await httpsEndpoint(pki, 'api', ['api.site.example']);
    stops.push(() => api.stop());
    const dns = await nameServer({ 'api.site.example': '127.0.0.1' });
    stops.push(() => dns.stop());
    const port = api.endpoints[0]!.port;
    const report = await runDoctor({
      targets: [{ host: 'api.site.example', ports: [{ port, tls: true, https: true }], role: 'endpoint' }],
      dnsServer: `127.0.0.1:${dns.endpoints[0]!.port}`,
      ca: [pki.root.certPem],
      timeoutMs: 3_000,
    });
    expect(find(report, 'mtu', 'api.site.example', port)).toMatchObject({ ok: true });
    expect(report.ok).toBe(true);
  });
});

describe.skipIf(missing('cmd:dig'))('a resolver that fails names', () => {
  it('SERVFAIL, NXDOMAIN and a dropped query: the DNS scenario beside the site gives the same classes', async () => {
    const dns = await nameServer(
      {
        'api.site.example': '127.0.0.1',
        'flaky.site.example': '127.0.0.1',
        'gone.site.example': '127.0.0.1',
        'slow.site.example': '127.0.0.1',
      },
      { 'flaky.site.example': 'servfail', 'gone.site.example': 'nxdomain', 'slow.site.example': 'drop' },
    );
    stops.push(() => dns.stop());
    const api = await httpsEndpoint(pki, 'api', ['api.site.example']);
    stops.push(() => api.stop());
    const at = (host: string, port = 443) => ({
      host,
      ports: [{ port, tls: true, https: true }],
      role: 'endpoint',
    });
    const o: DoctorOptions = {
      targets: [
        at('flaky.site.example'),
        at('api.site.example', api.endpoints[0]!.port),
        at('gone.site.example'),
        at('slow.site.example'),
      ],
      dnsServer: `127.0.0.1:${dns.endpoints[0]!.port}`,
      ca: [pki.root.certPem],
      timeoutMs: 1_500,
    };
    const report = await runDoctor(o);
    expect(find(report, 'dns', 'flaky.site.example').details?.error).toBe('SERVFAIL');
    expect(find(report, 'dns', 'gone.site.example').details?.error).toBe('NXDOMAIN');
    expect(find(report, 'dns', 'slow.site.example').details?.error).toBe('TIMEOUT');
    // The site scenario's fix is on the endpoint that resolved, not on a name that did not.
    const site = emitScenario(report, o, 'dns-site');
    expect(site.variants.find((v) => v.name === 'fixed')?.description).toContain('api.site.example');

    // The CLI writes the DNS failures beside the site scenario, and says so.
    const out = join(stateDir(), 'cli-site.yaml');
    const r = await cli(
      [
        'doctor',
        '--dns-server',
        o.dnsServer!,
        '--timeout',
        '1500',
        '--endpoint',
        'flaky.site.example:443',
      ].concat(['--emit-scenario', out]),
      { env: { FIELDLAB_STATE_DIR: stateDir(), https_proxy: '', HTTPS_PROXY: '' } },
    );
    expect(r.code, r.stderr).toBe(1);
    expect(dnsScenarioPath(out)).toBe(join(stateDir(), 'cli-site-dns.yaml'));
    expect(r.stderr).toContain(`wrote ${dnsScenarioPath(out)} (the DNS failures)`);
    expect(readFileSync(dnsScenarioPath(out), 'utf8')).toContain('type: servfail');

    const seen = await reproduce(stateDir(), report, o, 'dns-site');
    expect(seen).toMatchObject({
      'dns:broken-dns-1': 'dns.servfail',
      'dns:broken-dns-2': 'dns.nxdomain',
      'dns:broken-dns-3': 'dns.timeout',
      'dns:fixed': 'pass',
    });
  }, 120_000);
});
