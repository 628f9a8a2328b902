import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { httpControlChannel } from '../../harness/backends/remote/http-channel.js';
import { CONTROL_PATH } from '../../harness/backends/remote/protocol.js';
import { remoteRelay } from '../../harness/backends/remote/relay.js';
import { startControlledLab } from '../helpers/control-api.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';
import { tcpOutcome } from './remote-helpers.js';

/**
 * issue 14 (1): the worker's HTTP control API (a container's) took only `POST /toxics` (add), so the lab's
 * handle on a container relay could not update, remove or list toxics, nor read stats. Now one request
 * schema carries every relay operation; the lab's `remoteRelay` over it is a real `RelayHandle`. The
 * same server a container worker runs, here on loopback in front of a loopback lab's relay.
 */
useTempStateDir('fl-remote-http-');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const setUp = () => startControlledLab('remote-http', cleanups);

function post(
  port: number,
  body: string,
  opts: { headers?: Record<string, string>; method?: string; path?: string } = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: opts.path ?? CONTROL_PATH,
        method: opts.method ?? 'POST',
        agent: false,
        timeout: 5000,
        headers: { 'content-type': 'application/json', ...opts.headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text, headers: res.headers }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(body);
  });
}

describe('the worker’s HTTP control API and a remote relay over it', () => {
  it('carries every relay operation to the worker’s relay', async () => {
    const { lab, port, token } = await setUp();
    const local = lab.relay('api');
    const relay = remoteRelay({
      target: 'api',
      endpoint: local.endpoint,
      channel: httpControlChannel({ host: '127.0.0.1', port, token }),
      faults: lab,
    });
    relay.addToxic({ type: 'latency', latency: 30, name: 'slow' });
    await within(lab.faultsApplied(), 10_000, 'add');
    expect(local.toxics()).toMatchObject([{ name: 'slow', latency: 30 }]);

    relay.updateToxic('slow', { latency: 70, jitter: 5 });
    await within(lab.faultsApplied(), 10_000, 'update');
    expect(local.toxics()).toMatchObject([{ name: 'slow', latency: 70, jitter: 5 }]);
    expect((await relay.refresh()).toxics).toEqual(local.toxics());

    relay.removeToxic('slow');
    await within(lab.faultsApplied(), 10_000, 'remove');
    expect(local.toxics()).toEqual([]);
    expect(relay.toxics()).toEqual([]);

    expect(await tcpOutcome(local.endpoint.host, local.endpoint.port)).toBe('ok');
    await within(
      new Promise<void>((resolve) => {
        const check = () => (local.stats().active === 0 ? resolve() : setTimeout(check, 20));
        check();
      }),
      10_000,
      'the connection to close',
    );
    expect((await relay.refresh()).stats).toEqual(local.stats());
    expect(relay.stats().connections).toBeGreaterThanOrEqual(1);

    relay.setUpstream({ host: '127.0.0.1', port: 1 });
    await within(lab.faultsApplied(), 10_000, 'setUpstream');
    const before = lab.events.length;
    await tcpOutcome(local.endpoint.host, local.endpoint.port);
    await within(
      new Promise<void>((resolve) => {
        const check = () =>
          lab.events.slice(before).some((e) => e.source === 'api-relay' && e.type === 'upstream-error')
            ? resolve()
            : setTimeout(check, 20);
        check();
      }),
      10_000,
      'upstream-error on the worker’s relay',
    );
  });

  it('a refusal by the worker surfaces in faultsApplied and the mirror follows the worker', async () => {
    const { lab, port, token } = await setUp();
    const relay = remoteRelay({
      target: 'api',
      endpoint: lab.relay('api').endpoint,
      channel: httpControlChannel({ host: '127.0.0.1', port, token }),
      faults: lab,
    });
    // Added on the worker behind the mirror's back: the mirror cannot see the clash, the worker can.
    lab.relay('api').addToxic({ type: 'latency', latency: 5, name: 'taken' });
    relay.addToxic({ type: 'latency', latency: 9, name: 'taken' });
    await expect(lab.faultsApplied()).rejects.toMatchObject({ code: 'E_TOXIC_EXISTS' });
    expect(relay.toxics()).toMatchObject([{ name: 'taken', latency: 5 }]);
  });

  it('answers each op, and says what is wrong with a bad request', async () => {
    const { port, token } = await setUp();
    const auth = { authorization: `Bearer ${token}` };
    const send = async (o: unknown) => {
      const r = await post(port, JSON.stringify(o), { headers: auth });
      return { status: r.status, reply: JSON.parse(r.body) };
    };
    expect(await send({ op: 'add', target: 'api', toxic: { type: 'refuse', name: 'r' } })).toMatchObject({
      status: 200,
      reply: { ok: true, toxic: { name: 'r' }, toxics: [{ name: 'r' }] },
    });
    expect(await send({ op: 'list', target: 'api' })).toMatchObject({
      status: 200,
      reply: { toxics: [{ name: 'r' }] },
    });
    expect((await send({ op: 'stats', target: 'api' })).reply.stats).toMatchObject({ connections: 0 });
    expect(await send({ op: 'update', target: 'api', name: 'r', attrs: { toxicity: 0.5 } })).toMatchObject({
      status: 200,
      reply: { toxic: { name: 'r', toxicity: 0.5 } },
    });
    expect(await send({ op: 'remove', target: 'api', name: 'r' })).toMatchObject({
      status: 200,
      reply: { toxics: [] },
    });
    expect((await send({ op: 'clock' })).reply.now).toEqual(expect.any(Number));
    expect(await send({ op: 'remove', target: 'api', name: 'r' })).toMatchObject({
      status: 404,
      reply: { ok: false, error: { code: 'E_NO_SUCH_TOXIC' } },
    });
    expect(await send({ op: 'list', target: 'nobody' })).toMatchObject({ status: 404 });
    expect(await send({ op: 'add', target: 'api', toxic: { type: 'latency' } })).toMatchObject({
      status: 400,
      reply: { error: { code: 'E_BAD_TOXIC', message: expect.stringMatching(/toxic\.latency/) } },
    });
    expect(await send({ op: 'explode', target: 'api' })).toMatchObject({
      status: 400,
      reply: { error: { code: 'E_BAD_CONTROL' } },
    });
    const notJson = await post(port, '{nope', { headers: auth });
    expect(notJson.status).toBe(400);
    expect(JSON.parse(notJson.body).error.code).toBe('E_BAD_CONTROL');
    const get = await post(port, '', { headers: auth, method: 'GET' });
    expect(get.status).toBe(405);
    expect(get.headers.allow).toBe('POST');
    expect((await post(port, '{}', { headers: auth, path: '/elsewhere' })).status).toBe(404);
    const big = await post(port, JSON.stringify({ op: 'list', target: 'x'.repeat(70_000) }), {
      headers: auth,
    });
    expect(big.status).toBe(413);
  });

  it('answers 401 without the lab’s secret, before reading anything, and does nothing', async () => {
    const { lab, port, token } = await setUp();
    const add = JSON.stringify({ op: 'add', target: 'api', toxic: { type: 'refuse' } });
    const none = await post(port, add);
    expect(none.status).toBe(401);
    // RFC 6750 §3: a Bearer challenge; `invalid_token` once a token was offered.
    expect(none.headers['www-authenticate']).toBe('Bearer realm="fieldlab-control"');
    const wrong = await post(port, add, {
      headers: { authorization: `Bearer ${randomBytes(32).toString('base64url')}` },
    });
    expect(wrong.status).toBe(401);
    expect(wrong.headers['www-authenticate']).toMatch(/error="invalid_token"/);
    expect((await post(port, add, { headers: { authorization: `Basic ${token}` } })).status).toBe(401);
    expect((await post(port, '', { method: 'GET', path: '/anything' })).status).toBe(401);
    expect(lab.relay('api').toxics()).toEqual([]);
    // The lab's side says so, naming the cause.
    const relay = remoteRelay({
      target: 'api',
      endpoint: lab.relay('api').endpoint,
      channel: httpControlChannel({ host: '127.0.0.1', port, token: 'not-the-secret' }),
      faults: lab,
    });
    relay.addToxic({ type: 'refuse' });
    await expect(lab.faultsApplied()).rejects.toMatchObject({
      code: 'E_REMOTE_CONTROL',
      message: expect.stringMatching(/401/),
    });
    expect(lab.relay('api').toxics()).toEqual([]);
  });
});
