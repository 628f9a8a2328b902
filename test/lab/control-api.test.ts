import { randomBytes } from 'node:crypto';
import { request } from 'node:http';
import { afterEach, describe, expect, it } from 'vitest';
import { startControlledLab } from '../helpers/control-api.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * issue 12 (6): the container worker's control API took commands from anyone on the lab network. It now
 * wants the lab's secret (`Authorization: Bearer`) on every request; without it, 401 and no effect.
 * The same server the worker runs in its container, here on loopback in front of a loopback lab.
 */
useTempStateDir('fl-control-');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const setUp = () => startControlledLab('control', cleanups);

function post(
  port: number,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<{ status: number; body: string; challenge: string | undefined }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: '127.0.0.1',
        port,
        path: '/toxics',
        method: 'POST',
        agent: false,
        timeout: 5000,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () =>
          resolve({ status: res.statusCode ?? 0, body: text, challenge: res.headers['www-authenticate'] }),
        );
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

const toxic = (name: string) => ({ target: 'api', toxic: { type: 'latency', latency: 10, name } });

describe('container worker control API', () => {
  it('refuses a request without the lab secret or with a wrong one, and nothing happens', async () => {
    const { lab, port, token } = await setUp();
    const none = await post(port, toxic('no-secret'));
    expect(none.status).toBe(401);
    // RFC 6750 §3: a Bearer challenge; `invalid_token` once a token was offered.
    expect(none.challenge).toMatch(/^Bearer realm="fieldlab-control"$/);
    const wrong = await post(port, toxic('wrong-secret'), {
      authorization: `Bearer ${randomBytes(32).toString('base64url')}`,
    });
    expect(wrong.status).toBe(401);
    expect(wrong.challenge).toMatch(/error="invalid_token"/);
    // The right secret under another scheme, or a prefix of it, is no better.
    expect((await post(port, toxic('basic'), { authorization: `Basic ${token}` })).status).toBe(401);
    expect(
      (await post(port, toxic('prefix'), { authorization: `Bearer ${token.slice(0, 20)}` })).status,
    ).toBe(401);
    expect(lab.relay('api').toxics()).toEqual([]);
    expect(lab.events.some((e) => e.type === 'toxic-added')).toBe(false);
  });

  it('adds the toxic when the request carries the secret', async () => {
    const { lab, port, token } = await setUp();
    const ok = await post(port, toxic('slow'), { authorization: `Bearer ${token}` });
    expect(ok.status, ok.body).toBe(200);
    expect(
      lab
        .relay('api')
        .toxics()
        .map((t) => t.name),
    ).toEqual(['slow']);
    // A bad toxic is still a 400 naming it (authorised, but wrong).
    const bad = await post(
      port,
      { target: 'api', toxic: { type: 'nonsense' } },
      { authorization: `Bearer ${token}` },
    );
    expect(bad.status).toBe(400);
  });

  it('answers 401 before reading anything, whatever the path', async () => {
    const { port } = await setUp();
    const r = await new Promise<number>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port, path: '/anything', method: 'GET', agent: false },
        (res) => {
          res.resume();
          resolve(res.statusCode ?? 0);
        },
      );
      req.on('error', reject);
      req.end();
    });
    expect(r).toBe(401);
  });
});
