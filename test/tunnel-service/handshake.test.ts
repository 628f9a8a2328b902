import { request } from 'node:http';
import { RotateTunnelAccessTokenCommand } from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { MessageType, type TunnelServiceEvents } from '../../simulators/tunnel-service/index.js';
import {
  CLIENT_TOKEN_A,
  connect,
  type Lab,
  openTunnel,
  refusal,
  startLab,
  stopLab,
  V1,
  V2,
  V3,
} from './helpers.js';

let lab: Lab | undefined;
afterEach(async () => {
  await stopLab(lab);
  lab = undefined;
});

function tokenRejections(l: Lab): Array<TunnelServiceEvents['token-rejected']> {
  const seen: Array<TunnelServiceEvents['token-rejected']> = [];
  l.svc.events.onEvent('token-rejected', (e) => seen.push(e));
  return seen;
}

describe('tunnel-service data plane handshake', () => {
  it('reads local-proxy-mode from the query as a URL parser does: in any place, percent-encoded', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const src = await connect(lab, { path: '/tunnel?x=1&local-proxy-mode=source', token: t.source });
    const dst = await connect(lab, { path: '/tunnel?local-proxy-mode=destin%61tion', token: t.destination });
    expect((await src.next()).type).toBe(MessageType.SERVICE_IDS);
    expect((await dst.next()).availableServiceIds).toEqual(['SSH']);
    src.close();
    dst.close();
    const t2 = await openTunnel(lab);
    expect(await refusal(connect(lab, { path: '/tunnel/?local-proxy-mode=source', token: t2.source }))).toBe(
      400,
    );
    expect(await refusal(connect(lab, { path: '/tunnel?local-proxy-mode=', token: t2.source }))).toBe(400);
  });

  it('refuses bad requests before the upgrade, each with its status', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const rejected = tokenRejections(lab);
    expect(await refusal(connect(lab, { path: '/other?local-proxy-mode=source', token: t.source }))).toBe(
      400,
    );
    expect(await refusal(connect(lab, { path: '/tunnel?local-proxy-mode=both', token: t.source }))).toBe(400);
    expect(await refusal(connect(lab, { mode: 'source' }))).toBe(401);
    expect(await refusal(connect(lab, { mode: 'source', token: t.source, cookie: t.source }))).toBe(400);
    expect(await refusal(connect(lab, { mode: 'destination', token: t.source }))).toBe(403);
    expect(await refusal(connect(lab, { mode: 'source', token: 'AQGAnope' }))).toBe(403);
    expect(await refusal(connect(lab, { mode: 'source', token: t.source, clientToken: 'short' }))).toBe(400);
    expect(
      await refusal(connect(lab, { mode: 'source', token: t.source, clientToken: 'x_'.repeat(20) })),
    ).toBe(400);
    expect(await refusal(connect(lab, { mode: 'source', token: t.source, protocols: ['mqtt'] }))).toBe(400);
    expect(
      await refusal(
        connect(lab, { mode: 'source', token: t.source, headers: { 'x-big': 'y'.repeat(5000) } }),
      ),
    ).toBe(431);
    expect(rejected.map((e) => e.reason)).toEqual(['missing', 'ambiguous', 'mode-mismatch', 'unknown']);
    expect(rejected[2]).toMatchObject({
      code: 'E_TUNNEL_TOKEN_MODE_MISMATCH',
      status: 403,
      tunnelId: t.tunnelId,
    });
    // None of these used the token: it still works.
    const peer = await connect(lab, { mode: 'source', token: t.source });
    expect(peer.ws.protocol).toBe(V2);
    peer.close();
    expect(lab.svc.stats().handshakesRejected).toBe(10);
  });

  it('refuses a subprotocol-less upgrade with 400', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    expect(await refusal(connect(lab, { mode: 'source', token: t.source, protocols: [] }))).toBe(400);
  });

  it('answers a plain GET on the data port with 400', async () => {
    lab = await startLab();
    const { host, port } = endpointOf(lab.svc, 'data');
    const status = await new Promise<number | undefined>((resolve, reject) => {
      const req = request({ host, port, path: '/tunnel?local-proxy-mode=source' }, (res) => {
        res.resume();
        resolve(res.statusCode);
      });
      req.on('error', reject);
      req.end();
    });
    expect(status).toBe(400);
  });

  it("SERVICE_IDS names the tunnel's services as they are now: after a rotation that changes them too", async () => {
    lab = await startLab();
    const t = await openTunnel(lab, ['SSH']);
    const first = await connect(lab, { mode: 'source', token: t.source });
    expect((await first.next()).availableServiceIds).toEqual(['SSH']);
    const rotated = await lab.sdk.send(
      new RotateTunnelAccessTokenCommand({
        tunnelId: t.tunnelId,
        clientMode: 'ALL',
        destinationConfig: { thingName: 'thing-1', services: ['RDP', 'HTTP'] },
      }),
    );
    const src = await connect(lab, { mode: 'source', token: rotated.sourceAccessToken as string });
    const dst = await connect(lab, { mode: 'destination', token: rotated.destinationAccessToken as string });
    expect((await src.next()).availableServiceIds).toEqual(['RDP', 'HTTP']);
    expect((await dst.next()).availableServiceIds).toEqual(['RDP', 'HTTP']);
    const none = await openTunnel(lab, []);
    const bare = await connect(lab, { mode: 'source', token: none.source });
    expect((await bare.next()).availableServiceIds).toEqual([]);
    for (const p of [first, src, dst, bare]) p.close();
  });

  it('accepts the token in the cookie, echoes the highest offered subprotocol, sends SERVICE_IDS first', async () => {
    lab = await startLab();
    const t = await openTunnel(lab, ['SSH', 'RDP']);
    const src = await connect(lab, { mode: 'source', cookie: t.source, protocols: [V2, V3] });
    expect(src.ws.protocol).toBe(V3);
    expect(src.upgradeHeaders['channel-id']).toMatch(
      /^[0-9a-f]{16}-[0-9a-f]{8}-[0-9a-f]{8}-[0-9a-f]{16}-[0-9a-f]{8}$/,
    );
    const first = await src.next();
    expect(first.type).toBe(5);
    expect(first.availableServiceIds).toEqual(['SSH', 'RDP']);
    const dst = await connect(lab, { mode: 'destination', token: t.destination, protocols: [V1] });
    expect(dst.ws.protocol).toBe(V1);
    // V1: no SERVICE_IDS. The peer stays silent: a bounded check that nothing arrived.
    await expect(dst.next(300)).rejects.toThrow(/no message/);
    src.close();
    dst.close();
  });

  it('rejects a used token, accepts a reconnect with the same client token', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const rejected = tokenRejections(lab);
    const src = await connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A });
    await src.next();
    const dst = await connect(lab, { mode: 'destination', token: t.destination });
    await dst.next();
    dst.close();
    await dst.whenClosed();
    // No client token at first use: the destination token is used for good.
    expect(await refusal(connect(lab, { mode: 'destination', token: t.destination }))).toBe(403);
    // A different client token: refused.
    expect(
      await refusal(connect(lab, { mode: 'source', token: t.source, clientToken: 'b'.repeat(32) })),
    ).toBe(403);
    expect(rejected.map((e) => e.reason)).toEqual(['used', 'used']);
    expect(rejected[0]?.code).toBe('E_TUNNEL_TOKEN_USED');
    // Same client token: replaces the old connection.
    const again = await connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A });
    expect((await again.next()).type).toBe(5);
    expect((await src.whenClosed()).code).toBe(1000);
    again.close();
  });

  it('accepts only its own subprotocol names, not names on Object.prototype', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    for (const protocol of ['constructor', 'toString', '__proto__', 'hasOwnProperty']) {
      expect([
        protocol,
        await refusal(connect(lab, { mode: 'source', token: t.source, protocols: [protocol] })),
      ]).toEqual([protocol, 400]);
    }
    // The token is still unused: a proper handshake gets through.
    const peer = await connect(lab, { mode: 'source', token: t.source, protocols: ['constructor', V3] });
    expect(peer.ws.protocol).toBe(V3);
    expect((await peer.next()).type).toBe(5);
    peer.close();
  });

  it('rotation revokes old tokens and disconnects their sockets', async () => {
    lab = await startLab();
    const t = await openTunnel(lab);
    const rejected = tokenRejections(lab);
    const rotated: string[][] = [];
    lab.svc.events.onEvent('tokens-rotated', (e) => rotated.push(e.modes));
    const src = await connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A });
    expect(lab.svc.stats().peers).toBe(1);
    const out = await lab.sdk.send(
      new RotateTunnelAccessTokenCommand({ tunnelId: t.tunnelId, clientMode: 'SOURCE' }),
    );
    expect((await src.whenClosed()).code).toBe(1000);
    expect(rotated).toEqual([['source']]);
    expect(
      await refusal(connect(lab, { mode: 'source', token: t.source, clientToken: CLIENT_TOKEN_A })),
    ).toBe(403);
    expect(rejected.map((e) => [e.reason, e.code])).toEqual([['revoked', 'E_TUNNEL_TOKEN_REVOKED']]);
    const fresh = await connect(lab, { mode: 'source', token: out.sourceAccessToken as string });
    expect((await fresh.next()).type).toBe(5);
    fresh.close();
  });

  it('serves wss with the given certificate (TLS 1.2+)', async () => {
    const pki = await startPki({ name: 'pki' });
    try {
      const cert = await pki.issueServer(['localhost', '127.0.0.1']);
      lab = await startLab({ tls: { certPem: cert.chainPem, keyPem: cert.keyPem } });
      expect(lab.dataUrl.startsWith('wss://')).toBe(true);
      expect(endpointOf(lab.svc, 'data').protocol).toBe('wss');
      const t = await openTunnel(lab);
      // Untrusted root: the client refuses the server.
      await expect(connect(lab, { mode: 'source', token: t.source })).rejects.toMatchObject({
        code: expect.stringMatching(/CERT|ISSUER/),
      });
      const peer = await connect(lab, { mode: 'source', token: t.source, ca: [pki.root.certPem] });
      expect((await peer.next()).availableServiceIds).toEqual(['SSH']);
      peer.close();
    } finally {
      await pki.stop();
    }
  });
});
