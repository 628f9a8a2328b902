import { readFileSync, writeFileSync } from 'node:fs';
import { connect, createServer, type Server, type Socket } from 'node:net';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { DoctorReport } from '../../harness/doctor/index.js';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/index.js';
import { start as startProxy } from '../../simulators/connect-proxy/index.js';
import { start as startGeoDns } from '../../simulators/geo-dns/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { start as startInspector } from '../../simulators/tls-inspector/index.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, BIN } from '../helpers/cli.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { find, httpsEndpoint, runScenarioFiles } from './helpers.js';

/**
 * `fieldlab doctor` run inside a device's network namespace at sites built as real networks: the device
 * behind a router whose firewall drops AMQP (5671), an authenticating proxy, a TLS-inspecting proxy with
 * the site's own root name, and a router that drops packets over 1400 bytes (a PMTU black hole). The
 * simulators run in this process on loopback; each site address is a socket bound in its namespace
 * (bindIn) whose connections are piped to them. Then the scenario doctor wrote must reproduce, on
 * loopback, the failure doctor found there.
 *
 *   device 198.51.100.10 ── router (.1 | 203.0.113.1, firewall) ── cloud .20, proxy .30, inspector .40, ns .53
 */

const stateDir = useTempStateDir('fl-doctor-netns-');
const HUB = 'hub.site.example';
const at = { cloud: '203.0.113.20', proxy: '203.0.113.30', inspector: '203.0.113.40', ns: '203.0.113.53' };

describe.skipIf(missing('netns'))('fieldlab doctor in a device namespace, at sites built on netns', () => {
  let net: NetnsLab;
  let pki: PkiHandle;
  let caFile: string;
  const stops: Array<() => Promise<void> | void> = [];

  /** Pipes every connection to address:port inside a host's namespace to a loopback port here. */
  async function front(host: string, address: string, port: number, to: number): Promise<void> {
    const { handle } = await net.bindIn(host, address, port);
    const open = new Set<Socket>();
    const server: Server = createServer((c) => {
      const up = connect(to, '127.0.0.1');
      for (const s of [c, up]) {
        open.add(s);
        s.once('close', () => open.delete(s));
      }
      c.pipe(up).pipe(c);
      c.on('error', () => up.destroy());
      up.on('error', () => c.destroy());
    });
    await new Promise<void>((resolve) => server.listen(handle, resolve));
    // Connections doctor left stalled (the dropped port, the black hole) end with the site.
    stops.push(() => {
      for (const s of open) s.destroy();
      return new Promise<void>((resolve) => server.close(() => resolve()));
    });
  }

  beforeAll(async () => {
    assertBuilt();
    net = await applyNetns({
      labId: 'fldoctor',
      segments: [
        { name: 'lan', cidr: '198.51.100.0/24' },
        { name: 'wan', cidr: '203.0.113.0/24' },
      ],
      hosts: [
        {
          name: 'device',
          segments: [{ segment: 'lan', address: '198.51.100.10' }],
          routes: [{ to: 'default', via: '198.51.100.1' }],
        },
        {
          name: 'router',
          segments: [
            { segment: 'lan', address: '198.51.100.1' },
            { segment: 'wan', address: '203.0.113.1' },
          ],
          forward: true,
          firewall: [
            { action: 'drop', chain: 'forward', proto: 'tcp', port: 5671, comment: 'site: no AMQP out' },
          ],
        },
        ...(['cloud', 'proxy', 'inspector', 'ns'] as const).map((name) => ({
          name,
          segments: [{ segment: 'wan', address: at[name] }],
          routes: [{ to: '198.51.100.0/24', via: '203.0.113.1' }],
        })),
      ],
    });
    pki = await startPki();
    stops.push(() => pki.stop());
    caFile = join(stateDir(), 'site-ca.pem');
    writeFileSync(caFile, pki.root.certPem);

    // The cloud endpoint on 443, 5671 and 8883 (the ports `--azure` checks).
    const hub = await httpsEndpoint(pki, 'hub', [HUB]);
    stops.push(() => hub.stop());
    const hubPort = hub.endpoints[0]!.port;
    for (const p of [443, 5671, 8883]) await front('cloud', at.cloud, p, hubPort);

    // The site's name server.
    const udp = await net.bindUdpIn('ns', at.ns, 53);
    const tcp = await net.bindIn('ns', at.ns, 53);
    const dns = await startGeoDns({
      name: 'site-dns',
      bound: { udp: udp.socket, tcp: tcp.handle },
      zones: [
        {
          origin: HUB,
          soa: { mname: 'ns1.site.example', rname: 'hostmaster.site.example', minimum: 60 },
          records: [{ name: '@', type: 'A', value: at.cloud }],
        },
      ],
    });
    stops.push(() => dns.stop());

    // An authenticating proxy that allows CONNECT to 443 only, and an inspector with the site's root name.
    const map = { [`${HUB}:443`]: `127.0.0.1:${hubPort}`, [`${HUB}:5671`]: `127.0.0.1:${hubPort}` };
    const proxy = await startProxy({
      name: 'site-proxy',
      auth: { users: [{ username: 'edge', password: 'p@ss' }] },
      allowPorts: [443],
      map,
    });
    stops.push(() => proxy.stop());
    await front('proxy', at.proxy, 3128, proxy.endpoints[0]!.port);
    const inspector = await startInspector({
      name: 'site-inspector',
      rootName: 'Contoso Inspection Root CA',
      upstreamCa: [pki.root.certPem],
      map,
    });
    stops.push(() => inspector.stop());
    await front('inspector', at.inspector, 8080, inspector.endpoints[0]!.port);
  }, 60_000);

  afterAll(async () => {
    for (const stop of stops.reverse()) await stop();
    await net?.teardown();
  });

  /** `fieldlab doctor` in the device's namespace: its JSON report (it writes `<site>.yaml`). */
  async function doctorAt(site: string, args: string[]) {
    const out = join(stateDir(), `${site}.yaml`);
    const r = await net.execIn(
      'device',
      [
        process.execPath,
        BIN,
        'doctor',
        '--dns-server',
        at.ns,
        '--ca',
        caFile,
        '--timeout',
        '2000',
        '--json',
        ...args,
        '--emit-scenario',
        out,
        '--force',
      ],
      { timeoutMs: 60_000 },
    );
    expect(r.exitCode, r.stderr).toBe(1);
    const report = JSON.parse(r.stdout) as DoctorReport;
    expect(readFileSync(out, 'utf8')).toContain('fieldlab doctor');
    return report;
  }

  it('a router that drops 5671: a TCP timeout there, 443 and 8883 fine; the lab times out the same way', async () => {
    const report = await doctorAt('router-5671', ['--azure', HUB]);
    expect(find(report, 'dns', HUB).details?.addresses).toEqual([
      expect.objectContaining({ address: at.cloud }),
    ]);
    expect(find(report, 'tcp', HUB, 5671)).toMatchObject({ ok: false, details: { outcome: 'timeout' } });
    expect(find(report, 'tcp', HUB, 5671).hint).toContain('AMQP over WebSocket on 443');
    expect(find(report, 'tls', HUB, 443).ok).toBe(true);
    expect(find(report, 'tls', HUB, 8883).ok).toBe(true);
    expect(find(report, 'mtu', HUB, 443).ok).toBe(true);
    // The drop is the router's: its counter moved.
    const counters = await net.firewallCounters('router');
    expect(counters.find((c) => c.index === 0 && c.chain === 'forward')?.packets).toBeGreaterThan(0);

    const seen = await runScenarioFiles([join(stateDir(), 'router-5671.yaml')], 'router-5671');
    expect(seen).toEqual({ 'broken-ep1-5671': 'tcp.timeout', fixed: 'pass' });
  }, 120_000);

  it('an authenticating proxy: 407 without credentials, reproduced by the lab proxy', async () => {
    const proxy = `http://${at.proxy}:3128`;
    const report = await doctorAt('auth-proxy', ['--proxy', proxy, '--endpoint', `${HUB}:443`]);
    expect(find(report, 'proxy', HUB, 443)).toMatchObject({
      ok: false,
      details: { outcome: 'auth-required', status: 407 },
    });
    const seen = await runScenarioFiles([join(stateDir(), 'auth-proxy.yaml')], 'auth-proxy');
    expect(seen).toEqual({ 'broken-ep1-443': 'proxy.auth-required', fixed: 'pass' });
  }, 120_000);

  it("an inspecting proxy: its root's name found, and the lab's inspector fails the device the same way", async () => {
    const proxy = `http://${at.inspector}:8080`;
    const report = await doctorAt('inspector', ['--proxy', proxy, '--endpoint', `${HUB}:443`]);
    const tls = find(report, 'tls', HUB, 443);
    expect(tls).toMatchObject({ ok: false, details: { inspectedBy: 'Contoso Inspection Root CA' } });
    expect(readFileSync(join(stateDir(), 'inspector.yaml'), 'utf8')).toContain(
      'rootName: Contoso Inspection Root CA',
    );
    const seen = await runScenarioFiles([join(stateDir(), 'inspector.yaml')], 'inspector');
    expect(seen).toEqual({ 'broken-ep1-443': 'tls.untrusted-root', fixed: 'pass' });
  }, 120_000);

  it('a router that drops packets over 1400 bytes: the large record stalls, and stalls in the lab', async () => {
    // No ICMP "fragmentation needed" comes back: the packets just vanish (a PMTU black hole).
    const rule = ['nft', 'add', 'rule', 'inet', 'fieldlab', 'forward', 'ip', 'saddr', '198.51.100.10'];
    const added = await net.execIn('router', [...rule, 'ip', 'length', 'gt', '1400', 'counter', 'drop']);
    expect(added.exitCode, added.stderr).toBe(0);
    const report = await doctorAt('pmtu', ['--endpoint', `${HUB}:443`]);
    expect(find(report, 'tls', HUB, 443).ok).toBe(true);
    const mtu = find(report, 'mtu', HUB, 443);
    expect(mtu).toMatchObject({ ok: false, details: { answered: false } });
    expect(mtu.summary).toContain('PMTU black hole');
    const seen = await runScenarioFiles([join(stateDir(), 'pmtu.yaml')], 'pmtu');
    expect(seen).toEqual({ 'broken-ep1-443': 'tcp.timeout', fixed: 'pass' });
  }, 120_000);
});
