import type { LookupFunction } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  DestinationPolicy,
  defaultDestinations,
  E_DESTINATION_DENIED,
  LOOPBACK_DESTINATIONS,
} from '../../simulators/common/destinations.js';
import {
  type ConnectProxyHandle,
  type ConnectProxyOptions,
  start,
} from '../../simulators/connect-proxy/index.js';
import { basicAuth, collect, nextEvent, RawProxyConnection, startEcho, type Target } from './helpers.js';

/** A lookup that knows a few names (a lab's), and nothing else. */
const NAMES: Record<string, string> = {
  'inside.lab.example': '127.0.0.1',
  'outside.lab.example': '127.0.0.9',
};
const lookup: LookupFunction = (hostname, options, callback) => {
  const address = NAMES[hostname.toLowerCase()];
  process.nextTick(() => {
    if (!address) {
      callback(Object.assign(new Error(`getaddrinfo ENOTFOUND ${hostname}`), { code: 'ENOTFOUND' }), '', 4);
    } else if (options.all) callback(null, [{ address, family: 4 }]);
    else callback(null, address, 4);
  });
};

describe('DestinationPolicy', () => {
  it('allows names (wildcards), addresses and CIDRs, and nothing else', async () => {
    const p = new DestinationPolicy(
      ['hub.iot.example.com', '*.lab.example', '127.20.1.3', '198.18.7.0/24'],
      lookup,
    );
    expect(await p.check('HUB.iot.example.com')).toMatchObject({
      action: 'allow',
      by: 'name hub.iot.example.com',
    });
    expect(await p.check('a.b.lab.example')).toMatchObject({ action: 'allow', by: 'name *.lab.example' });
    expect(await p.check('127.20.1.3')).toMatchObject({ action: 'allow' });
    expect(await p.check('198.18.7.200')).toMatchObject({ action: 'allow' });
    expect(await p.check('::ffff:198.18.7.9')).toMatchObject({ action: 'allow' });
    expect(await p.check('127.0.0.1')).toMatchObject({
      action: 'deny',
      reason: '127.0.0.1 is not among the allowed addresses',
    });
    expect(await p.check('[::1]')).toMatchObject({ action: 'deny' });
    expect(await p.check('198.18.8.1')).toMatchObject({ action: 'deny' });
  });

  it('a name that is not listed counts by the addresses it resolves to', async () => {
    const p = new DestinationPolicy(['127.0.0.1'], lookup);
    expect(await p.check('inside.lab.example')).toMatchObject({ action: 'allow', address: '127.0.0.1' });
    expect(await p.check('outside.lab.example')).toEqual({
      action: 'deny',
      reason: 'outside.lab.example is not an allowed name and resolves to 127.0.0.9, not an allowed address',
    });
    expect(await p.check('nowhere.example')).toMatchObject({ action: 'unresolved', code: 'ENOTFOUND' });
  });

  it('its lookup refuses a name that resolves outside the list (the connection reaches nothing)', async () => {
    const p = new DestinationPolicy(['127.0.0.1'], lookup);
    const resolve = (name: string) =>
      new Promise<string>((ok, fail) =>
        p.lookup(name, {}, (err, address) => (err ? fail(err) : ok(String(address)))),
      );
    await expect(resolve('inside.lab.example')).resolves.toBe('127.0.0.1');
    await expect(resolve('outside.lab.example')).rejects.toMatchObject({ code: E_DESTINATION_DENIED });
  });

  it('any allows everything; an empty list nothing; set() replaces the list', async () => {
    const p = new DestinationPolicy('any', lookup);
    expect(await p.check('127.0.0.9')).toEqual({ action: 'allow', by: 'any' });
    p.set([]);
    expect(await p.check('127.0.0.1')).toMatchObject({ action: 'deny' });
    expect(p.describe()).toBe('nothing (an empty list)');
    p.set([...LOOPBACK_DESTINATIONS]);
    expect(await p.check('127.0.0.9')).toMatchObject({ action: 'allow' });
    expect(p.describe()).toBe('localhost, 127.0.0.0/8, ::1');
  });

  it('defaults to loopback only for a proxy on loopback, and to nothing for one on other interfaces', () => {
    expect(defaultDestinations('127.0.0.1')).toEqual(['localhost', '127.0.0.0/8', '::1']);
    expect(defaultDestinations('127.20.4.2')).toEqual(['localhost', '127.0.0.0/8', '::1']);
    expect(defaultDestinations('::1')).toEqual(['localhost', '127.0.0.0/8', '::1']);
    expect(defaultDestinations('0.0.0.0')).toEqual([]);
    expect(defaultDestinations('::')).toEqual([]);
    expect(defaultDestinations('198.51.100.3')).toEqual([]);
  });
});

describe('connect-proxy destinations', () => {
  let allowed: Target & { accepted: () => number };
  let outside: Target & { accepted: () => number };
  const started: ConnectProxyHandle[] = [];
  const open: RawProxyConnection[] = [];

  beforeAll(async () => {
    allowed = await startEcho('127.0.0.1');
    // A listener on a loopback address the proxy may not reach: it must never see a connection.
    outside = await startEcho('127.0.0.9');
  });
  afterAll(async () => {
    await allowed.stop();
    await outside.stop();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy();
    for (const p of started.splice(0)) await p.stop();
  });

  async function proxy(extra: Partial<ConnectProxyOptions> = {}): Promise<ConnectProxyHandle> {
    const p = await start({
      allowPorts: [allowed.port, outside.port],
      destinations: ['127.0.0.1', 'inside.lab.example'],
      lookup,
      ...extra,
    });
    started.push(p);
    return p;
  }
  async function connection(p: ConnectProxyHandle): Promise<RawProxyConnection> {
    const c = await RawProxyConnection.open(p.endpoints[0]!.port);
    open.push(c);
    return c;
  }
  const connect = (target: string, auth = '') =>
    `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`;

  it('refuses CONNECT to an address outside the list with 403 and destination-denied', async () => {
    const p = await proxy();
    const denied = nextEvent(p.events, 'destination-denied');
    const c = await connection(p);
    c.send(connect(`127.0.0.9:${outside.port}`));
    const r = await c.response();
    expect(r.status).toBe(403);
    expect(r.body).toContain(`127.0.0.9:${outside.port} is not a destination this proxy may reach`);
    expect(r.body).toContain('It may reach: 127.0.0.1, inside.lab.example');
    expect(r.body).toContain('destinations option (or "any")');
    expect(await denied).toMatchObject({
      target: `127.0.0.9:${outside.port}`,
      destination: `127.0.0.9:${outside.port}`,
      method: 'CONNECT',
      status: 403,
      allowed: '127.0.0.1, inside.lab.example',
    });
    // Kept alive as Squid keeps a 403: the next CONNECT on the socket, to an allowed one, tunnels.
    c.send(connect(`127.0.0.1:${allowed.port}`));
    expect((await c.response({ tunnel: true })).status).toBe(200);
    c.send('ok');
    expect(await c.read(2)).toBe('ok');
    expect(outside.accepted()).toBe(0);
    expect(p.stats()).toMatchObject({ denied: 1, allowed: 1 });
  });

  it('resolves a name once per CONNECT: the tunnel goes to the address the check allowed', async () => {
    const asked: string[] = [];
    const counting: LookupFunction = (hostname, options, callback) => {
      asked.push(hostname);
      lookup(hostname, options, callback);
    };
    const p = await proxy({ destinations: ['127.0.0.1'], lookup: counting });
    const c = await connection(p);
    c.send(connect(`inside.lab.example:${allowed.port}`));
    expect((await c.response({ tunnel: true })).status).toBe(200);
    c.send('ok');
    expect(await c.read(2)).toBe('ok');
    expect(asked).toEqual(['inside.lab.example']);
  });

  it('checks where the request really goes: the map destination, a resolved name, the upstream proxy', async () => {
    const mapped = await proxy({
      map: { 'hub.lab.example:443': `127.0.0.9:${outside.port}` },
      allowPorts: [443],
    });
    const seen = collect(mapped.events, 'destination-denied');
    const a = await connection(mapped);
    a.send(connect('hub.lab.example:443'));
    expect((await a.response()).status).toBe(403);
    expect(seen[0]).toMatchObject({
      target: 'hub.lab.example:443',
      destination: `127.0.0.9:${outside.port}`,
    });

    const named = await proxy();
    const b = await connection(named);
    b.send(connect(`outside.lab.example:${outside.port}`));
    const rb = await b.response();
    expect(rb.status).toBe(403);
    expect(rb.body).toContain('resolves to 127.0.0.9');
    b.send(connect(`inside.lab.example:${allowed.port}`));
    expect((await b.response({ tunnel: true })).status).toBe(200);

    const chained = await proxy({ upstream: `http://127.0.0.9:${outside.port}` });
    const up = nextEvent(chained.events, 'destination-denied');
    const c = await connection(chained);
    c.send(connect(`127.0.0.1:${allowed.port}`));
    expect((await c.response()).status).toBe(403);
    expect(await up).toMatchObject({ destination: `127.0.0.9:${outside.port}` });
    expect(outside.accepted()).toBe(0);
  });

  it('refuses plain HTTP forwarding outside the list too', async () => {
    const p = await proxy();
    const denied = nextEvent(p.events, 'destination-denied');
    const c = await connection(p);
    c.send(`GET http://127.0.0.9:${outside.port}/ HTTP/1.1\r\nHost: 127.0.0.9\r\n\r\n`);
    const r = await c.response();
    expect(r.status).toBe(403);
    expect(r.lines).toContain('Connection: keep-alive');
    expect(await denied).toMatchObject({ method: 'GET', status: 403 });
    expect(outside.accepted()).toBe(0);
  });

  it('with credentials required, 407 comes first, then the destination check', async () => {
    const p = await proxy({ auth: { users: [{ username: 'u', password: 'p' }] } });
    const c = await connection(p);
    c.send(connect(`127.0.0.9:${outside.port}`));
    expect((await c.response()).status).toBe(407);
    c.send(connect(`127.0.0.9:${outside.port}`, basicAuth('u', 'p')));
    expect((await c.response()).status).toBe(403);
  });

  it('setDestinations(any) opens it; a bad list is E_BAD_OPTION naming the field', async () => {
    const p = await proxy();
    p.setDestinations('any');
    const c = await connection(p);
    c.send(connect(`127.0.0.9:${outside.port}`));
    expect((await c.response({ tunnel: true })).status).toBe(200);
    expect(() => p.setDestinations(['not a host!'])).toThrow(
      expect.objectContaining({
        code: 'E_BAD_OPTION',
        message: expect.stringContaining('options.destinations[0]'),
      }),
    );
    await expect(start({ destinations: ['10.0.0.0/99'] })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });

  it('a proxy on loopback with no list reaches loopback (its clients reach it anyway)', async () => {
    const p = await start({ allowPorts: [outside.port] });
    started.push(p);
    expect(p.destinations.describe()).toBe('localhost, 127.0.0.0/8, ::1');
    const c = await connection(p);
    c.send(connect(`127.0.0.9:${outside.port}`));
    expect((await c.response({ tunnel: true })).status).toBe(200);
  });

  // RFC 9110 §9.3.6, RFC 9112 §3.2.3: authority-form only.
  it.each([
    ['userinfo', (port: number) => `u:p@127.0.0.1:${port}`],
    ['a query', (port: number) => `127.0.0.1:${port}?x=1`],
    ['a path', (port: number) => `127.0.0.1:${port}/p`],
    ['a scheme', (port: number) => `http://127.0.0.1:${port}`],
    ['an empty userinfo', (port: number) => `@127.0.0.1:${port}`],
  ])('answers a CONNECT target with %s 400 and keeps serving', async (_what, target) => {
    const p = await proxy();
    const denied = nextEvent(p.events, 'connect-denied');
    const c = await connection(p);
    c.send(connect(target(allowed.port)));
    const r = await c.response();
    expect(r.status).toBe(400);
    expect(await denied).toMatchObject({ rule: 'malformed', status: 400 });
    const d = await connection(p);
    d.send(connect(`127.0.0.1:${allowed.port}`));
    expect((await d.response({ tunnel: true })).status).toBe(200);
    expect(allowed.accepted()).toBeGreaterThan(0);
  });
});
