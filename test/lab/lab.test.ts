import { Resolver } from 'node:dns/promises';
import { once } from 'node:events';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { LabSimulator } from '../../harness/lab/lab.js';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { within } from '../helpers/within.js';

let state: string;
const labs: Lab[] = [];
beforeEach(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-lab-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.stop()));
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

const api: LabSimulator = {
  name: 'api',
  type: 'https-server',
  host: 'api.iot.example.com',
  port: 0,
  options: {},
};

async function start(sims: LabSimulator[] = [api]): Promise<Lab> {
  const lab = await startLab({ name: 't', hosts: [{ name: 'device.example.com' }], simulators: sims });
  labs.push(lab);
  return lab;
}

/** GET over HTTPS by lab name through the lab's lookup, trusting the lab root. */
function fetchLab(lab: Lab, url: string): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca: lab.pki.root.certPem, lookup: lab.lookup, timeout: 5000 }, (res) => {
      let body = '';
      res.on('data', (d: Buffer) => {
        body += d.toString();
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

describe('loopback lab', () => {
  it('gives hosts their own addresses, serves by name through a relay, and records events', async () => {
    const lab = await start();
    const device = lab.hosts.get('device.example.com');
    const apiAddr = lab.hosts.get('api.iot.example.com');
    expect(device).toBe(`${lab.block.prefix}.1`);
    expect(apiAddr).toBe(`${lab.block.prefix}.2`);
    const ep = lab.sim('api').endpoints[0]!;
    expect(ep.host).toBe(apiAddr);
    expect(ep.url).toBe(`https://api.iot.example.com:${ep.port}/`);
    // The simulator itself listens elsewhere: clients reach it through the relay.
    expect(lab.sim('api').handle.endpoints[0]!.port).not.toBe(ep.port);

    const r = await fetchLab(lab, ep.url!);
    expect(r.status).toBe(200);
    expect(JSON.parse(r.body)).toMatchObject({ ok: true });
    expect(lab.events.some((e) => e.source === 'api' && e.type === 'request')).toBe(true);
    expect(lab.events.some((e) => e.source === 'api-relay' && e.type === 'connection')).toBe(true);

    const hosts = readFileSync(lab.hostsFile, 'utf8');
    // With the lab DNS on port 53 clients ask it for lab names; the hosts file has them only as the fallback.
    if (lab.dns?.kind === 'resolver') expect(hosts).not.toContain('api.iot.example.com');
    else expect(hosts).toContain(`${apiAddr}\tapi.iot.example.com`);
  });

  it('resolves ${...} references and names what exists when one is wrong', async () => {
    const lab = await start();
    const ep = lab.sim('api').endpoints[0]!;
    expect(lab.interpolate(['x', '${api.url}', '${api.port}', '${lab.ca}'])).toEqual([
      'x',
      ep.url,
      String(ep.port),
      lab.pki.trust.bundlePath,
    ]);
    expect(lab.interpolate({ a: '${api.host}:${api.https.port}' })).toEqual({
      a: `api.iot.example.com:${ep.port}`,
    });
    expect(() => lab.interpolate('${api.nope}')).toThrow(/cannot resolve/);
    expect(() => lab.interpolate('${nope.url}')).toThrow(/cannot resolve/);
  });

  it('puts faults on the relay at run time', async () => {
    const lab = await start();
    const ep = lab.sim('api').endpoints[0]!;
    lab.relay('api').addToxic({ type: 'reset_peer', name: 'rst' });
    await expect(fetchLab(lab, ep.url!)).rejects.toMatchObject({ code: 'ECONNRESET' });
    lab.relay('api').removeToxic('rst');
    expect((await fetchLab(lab, ep.url!)).status).toBe(200);
    expect(() => lab.relay('nope')).toThrow(/no simulator nope/);
  });

  it('runs labs side by side without address collisions, and stop() removes everything', async () => {
    const [a, b] = await Promise.all([start(), start()]);
    expect(a!.block.prefix).not.toBe(b!.block.prefix);
    const dir = a!.dir;
    expect(existsSync(dir)).toBe(true);
    await a!.stop();
    expect(existsSync(dir)).toBe(false);
    expect(existsSync(join(state, 'blocks', a!.block.prefix))).toBe(false);
    await a!.stop(); // idempotent
  });

  it('serves every lab host name from a geo-dns simulator in the lab', async () => {
    const lab = await start([
      { name: 'dns', type: 'geo-dns', host: 'ns1.lab.example.com', port: 0, options: {} },
      api,
    ]);
    const dns = lab.sim('dns').endpoints.find((e) => e.name === 'dns-udp')!;
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`${dns.host}:${dns.port}`]);
    expect(await resolver.resolve4('api.iot.example.com')).toEqual([lab.hosts.get('api.iot.example.com')]);
    expect(await resolver.resolve4('device.example.com')).toEqual([lab.hosts.get('device.example.com')]);
  });

  it("resolves names beyond the hosts table through the lab's DNS for in-process clients, and nothing else", async () => {
    const lab = await start([
      {
        name: 'dns',
        type: 'geo-dns',
        host: 'ns1.iot.example.com',
        port: 0,
        options: {
          zones: [
            {
              origin: 'iot.example.com',
              soa: { mname: 'ns1.iot.example.com', rname: 'hostmaster.iot.example.com' },
              records: [
                {
                  name: 'global',
                  type: 'CNAME',
                  routing: 'geolocation',
                  location: '*',
                  value: 'api.iot.example.com',
                },
              ],
            },
          ],
        },
      },
      api,
    ]);
    const lookup = (name: string) =>
      new Promise<string>((resolve, reject) =>
        lab.lookup(name, {}, (err, address) => (err ? reject(err) : resolve(address as string))),
      );
    expect(await lookup('global.iot.example.com')).toBe(lab.hosts.get('api.iot.example.com'));
    await expect(lookup('nowhere.iot.example.com')).rejects.toMatchObject({ code: 'ENOTFOUND' });
    await expect(lookup('example.org')).rejects.toHaveProperty('code');
  });

  it('rejects an unknown simulator type and bad options with clear codes, leaving nothing behind', async () => {
    await expect(start([{ ...api, type: 'nope' }])).rejects.toMatchObject({ code: 'E_UNKNOWN_SIMULATOR' });
    await expect(start([{ ...api, options: { cert: 'stale' } }])).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    expect(existsSync(join(state, 'labs')) ? readdirSync(join(state, 'labs')) : []).toEqual([]);
  });
});

describe('settle', () => {
  it('waits for the connections of the window to close, and no longer than its bound', async () => {
    const lab = await start();
    const t0 = Date.now() - 1;
    const ep = lab.sim('api').endpoints[0]!;
    const socket = connect({ host: ep.host, port: ep.port });
    await within(once(socket, 'connect'), 5_000, 'the connection');
    // Open: the bound decides (a toxic may hold a connection for ever).
    const bounded = performance.now();
    await lab.settle(t0, 200);
    expect(performance.now() - bounded).toBeGreaterThanOrEqual(190);
    // Closed meanwhile: settle returns once the relay and the server have said so.
    const settled = lab.settle(t0, 10_000);
    socket.destroy();
    const started = performance.now();
    await settled;
    expect(performance.now() - started).toBeLessThan(5_000);
    const closed = lab
      .eventsSince(t0)
      .filter((e) => e.type === 'closed')
      .map((e) => e.source);
    expect(closed).toEqual(expect.arrayContaining(['api-relay']));
  });
});
