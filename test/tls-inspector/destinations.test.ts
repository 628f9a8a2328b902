import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  start,
  type TlsInspectorHandle,
  type TlsInspectorOptions,
} from '../../simulators/tls-inspector/index.js';
import { RawProxyConnection, startEcho, type Target } from '../connect-proxy/helpers.js';
import { inspectorCa, labCa, nextEvent } from './helpers.js';

/**
 * Issue #12: the inspector had no destination policy at all (CONNECT 127.0.0.1:22 → 200). It now
 * connects only to its destinations; the rest gets 403 and `destination-denied`, before any byte leaves.
 */
describe('tls-inspector destinations', () => {
  let allowed: Target & { accepted: () => number };
  let outside: Target & { accepted: () => number };
  let inspector: TlsInspectorHandle | undefined;
  const open: RawProxyConnection[] = [];

  beforeAll(async () => {
    allowed = await startEcho('127.0.0.1');
    outside = await startEcho('127.0.0.9');
  });
  afterAll(async () => {
    await allowed.stop();
    await outside.stop();
  });
  afterEach(async () => {
    for (const c of open.splice(0)) c.destroy();
    await inspector?.stop();
    inspector = undefined;
  });

  async function startInspector(extra: Partial<TlsInspectorOptions> = {}): Promise<RawProxyConnection> {
    const lab = await labCa();
    inspector = await start({
      ca: await inspectorCa(),
      upstreamCa: [lab.root.certPem],
      destinations: ['127.0.0.1'],
      ...extra,
    });
    const c = await RawProxyConnection.open(inspector.endpoints[0]!.port);
    open.push(c);
    return c;
  }
  const connect = (target: string) => `CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`;

  it('refuses a target outside the list with 403, destination-denied, and no connection to it', async () => {
    const c = await startInspector({ passthrough: ['*'] });
    const denied = nextEvent(inspector!.events, 'destination-denied');
    c.send(connect(`127.0.0.9:${outside.port}`));
    const r = await c.response();
    expect(r.status).toBe(403);
    expect(r.body).toContain('is not a destination this inspector may reach');
    expect(r.body).toContain('It may reach: 127.0.0.1');
    expect(await denied).toMatchObject({
      target: `127.0.0.9:${outside.port}`,
      destination: `127.0.0.9:${outside.port}`,
      status: 403,
      allowed: '127.0.0.1',
    });
    // Squid keeps a 403 alive: the next CONNECT on the same socket is served.
    c.send(connect(`127.0.0.1:${allowed.port}`));
    expect((await c.response({ tunnel: true })).status).toBe(200);
    c.send('hi');
    expect(await c.read(2)).toBe('hi');
    expect(outside.accepted()).toBe(0);
    expect(inspector!.stats().denied).toBe(1);
  });

  it('checks the map destination, not just the name asked for', async () => {
    const c = await startInspector({ map: { 'api.lab.example:443': `127.0.0.9:${outside.port}` } });
    const denied = nextEvent(inspector!.events, 'destination-denied');
    c.send(connect('api.lab.example:443'));
    expect((await c.response()).status).toBe(403);
    expect(await denied).toMatchObject({
      target: 'api.lab.example:443',
      destination: `127.0.0.9:${outside.port}`,
    });
    expect(outside.accepted()).toBe(0);
  });

  it('answers a CONNECT target with userinfo or a query 400', async () => {
    const c = await startInspector();
    c.send(connect(`u:p@127.0.0.1:${allowed.port}`));
    expect((await c.response()).status).toBe(400);
    const d = await RawProxyConnection.open(inspector!.endpoints[0]!.port);
    open.push(d);
    d.send(connect(`127.0.0.1:${allowed.port}?x=1`));
    expect((await d.response()).status).toBe(400);
  });
});
