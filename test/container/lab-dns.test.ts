import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { LAB_LABEL } from '../../harness/backends/container/clean.js';
import { containerGroups } from '../../harness/backends/container/groups.js';
import { containerNetwork } from '../../harness/backends/container/network.js';
import type { BackendNetwork, CommandRun } from '../../harness/backends/types.js';
import { dnsFaultTarget } from '../../harness/faults/dns.js';
import { type Lab, type LabSimulator, startLab } from '../../harness/lab/lab.js';
import { missing } from '../helpers/capability.js';
import { docker, ensureImage, IMAGE } from './helpers.js';

/**
 * The container lab's DNS (issue 18.1): every container of the lab, the client's and the simulators',
 * resolves through the lab's resolver on port 53 (a lab file over its /etc/resolv.conf), not Docker's
 * embedded DNS, so DNS faults and resolver personas reach unmodified clients (dig, curl, getent) there
 * as on the other backends. Two small labs: one with the lab's own resolver (lab-dns) forwarding the
 * geo-dns zone, one whose scenario declares its resolvers on port 53.
 */
const soa = { mname: 'ns1.example.net', rname: 'hostmaster.example.net', minimum: 30 };

interface Started {
  lab: Lab;
  network: BackendNetwork;
}

async function startContainerDnsLab(name: string, simulators: LabSimulator[]): Promise<Started> {
  const network = await containerNetwork({ image: IMAGE, simulators });
  return { lab: await startLab({ name, simulators }, network), network };
}

/** Runs a command client in a container of the lab (bounded by its own time limit). */
function client(s: Started, argv: string[], extra: Partial<CommandRun> = {}) {
  return s.network.runCommand(s.lab, {
    host: 'device',
    argv,
    env: {},
    timeoutMs: 30_000,
    resolve: 'lab',
    ...extra,
  });
}

/** dig's own report of the server it asked (`;; SERVER: 198.18.3.4#53(198.18.3.4) (UDP)`). */
function serverOf(digOutput: string): string | undefined {
  return /^;; SERVER: ([\d.]+)#53/m.exec(digOutput)?.[1];
}

/** The resolver events of `source` about `name`, for what a lookup left on the timeline. */
function answers(lab: Lab, source: string, name: string) {
  return lab.events.filter(
    (e) => e.source === source && e.type === 'answer' && (e.data as { name?: string }).name === name,
  );
}

describe.skipIf(missing('docker'))('the container lab’s own DNS', () => {
  let s: Started;
  beforeAll(async () => {
    await ensureImage();
    s = await startContainerDnsLab('cdns', [
      { name: 'api', type: 'https-server', host: 'api.iot.example.com', port: 8443 },
      {
        name: 'dns',
        type: 'geo-dns',
        host: 'ns1.example.net',
        options: { zones: [{ origin: 'iot.example.com', soa }] },
      },
    ]);
  }, 300_000);
  afterAll(async () => {
    await s?.lab.stop();
  }, 120_000);

  it('a client container asks the lab resolver (not Docker’s 127.0.0.11), which forwards the zone to the geo-dns', async () => {
    const resolver = s.lab.hosts.get('ns.fieldlab.internal');
    expect(resolver).toMatch(/^198\.18\.\d+\.\d+$/);
    const r = await client(s, ['dig', '+tries=1', '+time=5', 'api.iot.example.com', 'A']);
    expect(r.exitCode, r.stderr).toBe(0);
    expect(serverOf(r.stdout)).toBe(resolver);
    expect(r.stdout).toContain(s.lab.hosts.get('api.iot.example.com'));
    const seen = answers(s.lab, 'lab-dns', 'api.iot.example.com');
    expect(seen.map((e) => (e.data as { source: string; rcode: string }).source)).toContain('upstream');
    expect(s.lab.events.some((e) => e.source === 'dns' && e.type === 'query')).toBe(true);
    // A name outside the geo-dns zones is a lab host the resolver answers itself.
    const own = await client(s, ['dig', '+short', '+tries=1', '+time=5', 'ns1.example.net']);
    expect(own.stdout.trim()).toBe(s.lab.hosts.get('ns1.example.net'));
    expect(answers(s.lab, 'lab-dns', 'ns1.example.net').length).toBeGreaterThan(0);
  }, 90_000);

  it('a SERVFAIL on the geo-dns (through its container’s control API) reaches curl as its DNS error (exit 6); removing it heals the path', async () => {
    const ca = s.lab.resolveRef('lab.ca', 'client');
    const curl = [
      'curl',
      '--silent',
      '--show-error',
      '--max-time',
      '15',
      '--cacert',
      ca,
      'https://api.iot.example.com:8443/',
    ];
    s.network.applyFault(s.lab, 'dns', { type: 'servfail', qname: 'api.iot.example.com', name: 'sf' });
    await s.lab.faultsApplied();
    const broken = await client(s, curl);
    // curl: CURLE_COULDNT_RESOLVE_HOST (6)
    expect(broken.exitCode, broken.stderr).toBe(6);
    expect(broken.stderr).toMatch(/Could not resolve host/);
    expect(
      s.lab.events.some(
        (e) =>
          e.source === 'dns' && e.type === 'toxic-applied' && (e.data as { toxic?: string }).toxic === 'sf',
      ),
    ).toBe(true);
    expect(
      dnsFaultTarget(s.lab, 'dns')
        .dnsFaults()
        .map((f) => f.name),
    ).toEqual(['sf']);
    // Checked here at once as the simulator would: a bad field, a name taken.
    expect(() => s.network.applyFault(s.lab, 'dns', { type: 'delay', latency: 'soon' } as never)).toThrow(
      /latency/,
    );
    expect(() => s.network.applyFault(s.lab, 'dns', { type: 'nxdomain', name: 'sf' })).toThrow(/sf/);
    dnsFaultTarget(s.lab, 'dns').removeDnsFault('sf');
    await s.lab.faultsApplied();
    const healed = await client(s, curl);
    expect(healed.exitCode, healed.stderr).toBe(0);
  }, 90_000);

  it('a simulator container resolves through the lab resolver too (the api container looks up the geo-dns’s name)', async () => {
    const api = s.lab.hosts.get('api.iot.example.com');
    const ids = docker(['ps', '-q', '--filter', `label=${LAB_LABEL}=${s.lab.id}`]).split('\n');
    // The api's container: the one at the api's address.
    const container = docker([
      'inspect',
      '-f',
      '{{.Id}} {{range .NetworkSettings.Networks}}{{.IPAddress}}{{end}}',
      ...ids,
    ])
      .split('\n')
      .map((l) => l.split(' '))
      .find(([, ip]) => ip === api)?.[0];
    if (!container) throw new Error(`no container at the api's address ${api}`);
    const r = await execa('docker', ['exec', container, 'getent', 'hosts', 'ns1.example.net'], {
      timeout: 20_000,
      reject: false,
    });
    expect(r.stdout).toContain(s.lab.hosts.get('ns1.example.net'));
    expect(
      answers(s.lab, 'lab-dns', 'ns1.example.net').some(
        (e) => (e.data as { client?: string }).client === api,
      ),
    ).toBe(true);
  }, 60_000);
});

describe.skipIf(missing('docker'))('a container lab whose scenario declares its resolvers', () => {
  let s: Started;
  beforeAll(async () => {
    await ensureImage();
    s = await startContainerDnsLab('cdns-declared', [
      { name: 'isp', type: 'resolver', host: 'resolver.isp.example.net', port: 53, options: { tls: false } },
      {
        name: 'public',
        type: 'resolver',
        host: 'resolver.public.example.org',
        port: 53,
        options: { tls: false },
      },
    ]);
  }, 300_000);
  afterAll(async () => {
    await s?.lab.stop();
  }, 120_000);

  it('the first resolver on port 53 is the lab’s DNS; client.resolver picks another for the run', async () => {
    expect(s.lab.simulators.has('lab-dns')).toBe(false);
    const isp = s.lab.hosts.get('resolver.isp.example.net');
    const pub = s.lab.hosts.get('resolver.public.example.org');
    const dig = ['dig', '+tries=1', '+time=5', 'resolver.public.example.org'];
    const byDefault = await client(s, dig);
    expect(serverOf(byDefault.stdout)).toBe(isp);
    expect(byDefault.stdout).toContain(pub);
    const picked = await client(s, dig, { resolver: 'public' });
    expect(serverOf(picked.stdout)).toBe(pub);
    expect(answers(s.lab, 'public', 'resolver.public.example.org').length).toBe(1);
    expect(answers(s.lab, 'isp', 'resolver.public.example.org').length).toBe(1);
  }, 60_000);
});

describe('container groups and ports', () => {
  it('refuses two resolvers on port 53 that share the geo-dns’s container (one address), naming them', () => {
    const resolver = (name: string, host: string): LabSimulator => ({
      name,
      type: 'resolver',
      host,
      port: 53,
      options: { tls: false, forward: [{ zone: 'iot.example.com', to: ['dns'] }] },
    });
    const dns: LabSimulator = {
      name: 'dns',
      type: 'geo-dns',
      host: 'ns1.example.net',
      options: { zones: [{ origin: 'iot.example.com', soa }] },
    };
    expect(containerGroups([dns, resolver('isp', 'resolver.isp.example.net')])).toHaveLength(1);
    expect(() =>
      containerGroups([
        dns,
        resolver('isp', 'resolver.isp.example.net'),
        resolver('public', 'resolver.public.example.org'),
      ]),
    ).toThrow(
      expect.objectContaining({
        code: 'E_CONTAINER_PEERS',
        message: expect.stringMatching(/isp and public .*53/),
      }),
    );
  });
});
