import type { LookupFunction } from 'node:net';
import { networkInterfaces } from 'node:os';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { labDestinations } from '../../harness/adapters/proxy-destinations.js';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { explain } from '../../harness/probe/evidence.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { RawProxyConnection, startEcho, type Target } from './helpers.js';

/**
 * Issue #12: a lab proxy reaches the lab and nothing else unless the scenario says so. The lab hands
 * its proxies its hosts (names and addresses); the rest is 403 `destination-denied`, classed
 * `proxy.destination-denied`.
 */
useTempStateDir('fl-proxy-dest-');

describe('lab proxies reach only the lab', () => {
  let local: Target & { accepted: () => number };
  let outside: Target & { accepted: () => number };
  let lab: Lab | undefined;
  const open: RawProxyConnection[] = [];

  beforeAll(async () => {
    // Services on this machine's loopback that are no lab host.
    local = await startEcho('127.0.0.1');
    outside = await startEcho('127.0.0.9');
  });
  afterAll(async () => {
    await local.stop();
    await outside.stop();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy();
    await lab?.stop();
    lab = undefined;
  });

  async function labWith(destinations?: unknown): Promise<Lab> {
    const extra = destinations === undefined ? {} : { destinations };
    lab = await startLab({
      name: 'proxy-dest',
      simulators: [
        { name: 'hub', type: 'https-server', host: 'hub.iot.example.com', port: 8443 },
        {
          name: 'proxy',
          type: 'connect-proxy',
          host: 'proxy.corp.example.com',
          options: { allowPorts: [8443, local.port, outside.port], ...extra },
        },
        {
          name: 'inspector',
          type: 'tls-inspector',
          host: 'inspector.corp.example.com',
          options: { passthrough: ['*'], ...extra },
        },
      ],
    });
    return lab;
  }
  async function ask(l: Lab, sim: string, target: string, tunnel = false) {
    const ep = l.sim(sim).endpoints[0]!;
    const c = await RawProxyConnection.open(ep.port, ep.host);
    open.push(c);
    c.send(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
    return c.response({ tunnel });
  }

  it('tunnels to lab hosts by name and address, and refuses the rest with 403', {
    timeout: 30_000,
  }, async () => {
    const l = await labWith();
    const hub = l.resolveRef('lab.host.hub.iot.example.com');
    expect((await ask(l, 'proxy', 'hub.iot.example.com:8443', true)).status).toBe(200);
    expect((await ask(l, 'proxy', `${hub}:8443`, true)).status).toBe(200);
    expect((await ask(l, 'inspector', 'hub.iot.example.com:8443', true)).status).toBe(200);

    const toLocal = await ask(l, 'proxy', `127.0.0.1:${local.port}`);
    expect(toLocal.status).toBe(403);
    expect(toLocal.body).toContain('hub.iot.example.com');
    expect((await ask(l, 'proxy', `127.0.0.9:${outside.port}`)).status).toBe(403);
    expect((await ask(l, 'inspector', `127.0.0.1:${local.port}`)).status).toBe(403);
    expect(local.accepted()).toBe(0);
    expect(outside.accepted()).toBe(0);

    const denials = l.events.filter((e) => e.type === 'destination-denied');
    expect(denials.map((e) => e.source).sort()).toEqual(['inspector', 'proxy', 'proxy']);
    // A client sees a 403 (proxy.connect-denied); the lab's evidence names the refusal.
    const { verdict, explanation } = explain(
      { ok: false, class: 'proxy.connect-denied', detail: 'CONNECT tunnel failed, response 403' },
      denials,
    );
    expect(verdict).toMatchObject({ ok: false, class: 'proxy.destination-denied' });
    expect(explanation[0]).toMatch(
      /^proxy (proxy|inspector) refused 127\.0\.0\.\d:\d+: .* not among the destinations/,
    );
  });

  it('a scenario may allow more: an address, or any', { timeout: 30_000 }, async () => {
    const l = await labWith(['127.0.0.9']);
    expect((await ask(l, 'proxy', `127.0.0.9:${outside.port}`, true)).status).toBe(200);
    expect((await ask(l, 'proxy', `127.0.0.1:${local.port}`)).status).toBe(403);
    expect((await ask(l, 'proxy', 'hub.iot.example.com:8443', true)).status).toBe(200);
    await l.stop();
    const open2 = await labWith('any');
    expect((await ask(open2, 'inspector', `127.0.0.1:${local.port}`, true)).status).toBe(200);
  });
});

describe('labDestinations', () => {
  const lookup: LookupFunction = (name, _o, cb) => {
    const known: Record<string, string> = { 'hub.iot.example.com': '127.20.3.1' };
    const a = known[name];
    process.nextTick(() =>
      a
        ? cb(null, [{ address: a, family: 4 }])
        : cb(Object.assign(new Error('ENOTFOUND'), { code: 'ENOTFOUND' }), ''),
    );
  };

  it('names and addresses as clients and as the proxy see them, plus the scenario’s', async () => {
    const hosts = new Map([
      ['hub.iot.example.com', '203.0.113.10'],
      ['proxy.corp.example.com', '198.51.100.3'],
    ]);
    expect(await labDestinations(hosts, lookup, '127.20.3.2', ['10.9.0.0/16'])).toEqual([
      'hub.iot.example.com',
      '203.0.113.10',
      '127.20.3.1',
      'proxy.corp.example.com',
      '198.51.100.3',
      '10.9.0.0/16',
    ]);
  });

  it('in a lab container (bound to every interface) the container’s networks count, 0.0.0.0 never', async () => {
    const own = Object.values(networkInterfaces())
      .flat()
      .filter((i) => i && !i.internal && i.family === 'IPv4')
      .map((i) => i?.cidr);
    const got = await labDestinations(new Map([['proxy.corp.example.com', '0.0.0.0']]), lookup, '0.0.0.0');
    expect(got).toEqual(['proxy.corp.example.com', ...own]);
  });
});
