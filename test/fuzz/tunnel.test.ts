import { CloseTunnelCommand, ListTunnelsCommand } from '@aws-sdk/client-iotsecuretunneling';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { MessageType as T } from '../../simulators/tunnel-service/index.js';
import { openTunnelWith } from '../helpers/tunnel.js';
import { connect, connectPair, type Lab, startLab, stopLab, within } from '../tunnel-service/helpers.js';
import { fuzz, settleWithin } from './harness.js';
import { type ApiInput, apiRequest, type SessionInput, tunnelSession } from './tunnel-inputs.js';

let lab: Lab;
let apiUrl: string;
beforeAll(async () => {
  lab = await startLab();
  apiUrl = lab.svc.endpoints.find((e) => e.name === 'api')?.url as string;
});
afterAll(() => stopLab(lab));

/** A management API call over fetch (AWS JSON 1.1); resolves to the status and parsed body. */
async function call(
  operation: string,
  body: object,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(apiUrl, {
    method: 'POST',
    headers: {
      'x-amz-target': `IoTSecuredTunneling.${operation}`,
      'content-type': 'application/x-amz-json-1.1',
    },
    body: JSON.stringify(body),
    signal: AbortSignal.timeout(5000),
  });
  return { status: res.status, json: (await res.json()) as Record<string, unknown> };
}

/**
 * The AWS SDK opens a tunnel, both peers connect (v2), a stream starts and DATA crosses both ways, the SDK
 * closes the tunnel with delete.
 */
async function tunnelWorks(): Promise<void> {
  const t = await openTunnelWith(lab.sdk, ['SSH'], 'thing-probe');
  const { src, dst } = await connectPair(lab, t);
  try {
    src.send({ type: T.STREAM_START, streamId: 1, serviceId: 'SSH' });
    expect(await dst.next()).toMatchObject({ type: T.STREAM_START, streamId: 1 });
    src.send({ type: T.DATA, streamId: 1, serviceId: 'SSH', payload: Buffer.from('ping') });
    expect((await dst.next()).payload.toString()).toBe('ping');
    dst.send({ type: T.DATA, streamId: 1, serviceId: 'SSH', payload: Buffer.from('pong') });
    expect((await src.next()).payload.toString()).toBe('pong');
  } finally {
    src.close();
    dst.close();
    await within(
      lab.sdk.send(new CloseTunnelCommand({ tunnelId: t.tunnelId, delete: true })),
      5000,
      'CloseTunnel',
    );
  }
}

/** Closes and deletes every tunnel left by a batch, as an operator cleaning up would (ListTunnels pages). */
async function deleteAllTunnels(): Promise<void> {
  // Bounded: a tunnel listed again after its delete would otherwise keep this loop asking until the test times out.
  const deleted = new Set<string>();
  for (;;) {
    const page = await lab.sdk.send(new ListTunnelsCommand({ maxResults: 100 }));
    const ids = (page.tunnelSummaries ?? []).map((s) => s.tunnelId as string);
    if (ids.length === 0) return;
    const again = ids.filter((id) => deleted.has(id));
    if (again.length > 0) throw new Error(`still listed after CloseTunnel delete: true: ${again.join(', ')}`);
    for (const id of ids) deleted.add(id);
    await Promise.all(
      ids.map((tunnelId) => lab.sdk.send(new CloseTunnelCommand({ tunnelId, delete: true }))),
    );
  }
}

/** One data-plane session: open a tunnel, connect both peers, send the frames, then close and delete. */
async function playSession(s: SessionInput): Promise<void> {
  const open = await call(
    'OpenTunnel',
    s.services.length > 0 ? { destinationConfig: { thingName: 't', services: s.services } } : {},
  );
  expect(open.status).toBe(200);
  const tokens = {
    source: open.json.sourceAccessToken as string,
    destination: open.json.destinationAccessToken as string,
  };
  const peers = await Promise.all(
    (['source', 'destination'] as const).map((mode) =>
      connect({ dataUrl: lab.dataUrl }, { mode, token: tokens[mode], protocols: [s.protocol] }),
    ),
  );
  const [src, dst] = peers as [Awaited<ReturnType<typeof connect>>, Awaited<ReturnType<typeof connect>>];
  for (const f of s.frames) {
    const peer = f.from === 'source' ? src : dst;
    if (peer.ws.readyState === peer.ws.OPEN) peer.ws.send(f.bytes);
  }
  // The service answers a bad frame by closing (or not at all): either is fine, a crash is not.
  await settleWithin(Promise.all([src.closed, dst.closed]), 30);
  src.close();
  dst.close();
  const closed = await call('CloseTunnel', { tunnelId: open.json.tunnelId, delete: true });
  expect(closed.status).toBe(200);
}

let lastTunnel: { id: string; arn: string } | undefined;
/** One API request; the answer must be an AWS JSON error or success, never a 5xx. */
async function sendApi(r: ApiInput): Promise<void> {
  const tunnel: { id: string; arn: string } =
    lastTunnel ??
    (await call('OpenTunnel', {}).then((o) => ({
      id: o.json.tunnelId as string,
      arn: o.json.tunnelArn as string,
    })));
  lastTunnel = tunnel;
  const { id, arn } = tunnel;
  const body = r.body.toString('latin1').replaceAll('$TUNNEL', id).replaceAll('$ARN', arn);
  const res = await fetch(apiUrl, {
    method: r.method,
    headers: { 'x-amz-target': r.target, ...(r.contentType ? { 'content-type': r.contentType } : {}) },
    ...(r.method === 'GET' ? {} : { body: Buffer.from(body, 'latin1') }),
    signal: AbortSignal.timeout(5000),
  });
  const text = await res.text();
  // A client's bad request is its error (4xx with an AWS error type), never the service's (5xx).
  expect(
    res.status,
    `${r.method} ${r.target} ${body.slice(0, 200)} → ${res.status} ${text.slice(0, 200)}`,
  ).toBeLessThan(500);
}

describe('fuzz: Secure Tunneling frames and API requests → tunnel-service', () => {
  it('keeps relaying and returns to its heap baseline after mutated data-plane sessions', async () => {
    const r = await fuzz({
      name: 'tunnel frames → tunnel-service',
      input: tunnelSession,
      send: playSession,
      probe: tunnelWorks,
      settle: deleteAllTunnels,
      batchSize: 40,
      batches: 5,
      concurrency: 8,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);

  it('answers mutated API requests with AWS errors, keeps serving the SDK and returns to its heap baseline', async () => {
    const r = await fuzz({
      name: 'tunnel API → tunnel-service',
      input: apiRequest,
      send: sendApi,
      probe: tunnelWorks,
      settle: async () => {
        await deleteAllTunnels();
        lastTunnel = undefined;
      },
      batchSize: 150,
      batches: 6,
      concurrency: 8,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);
});
