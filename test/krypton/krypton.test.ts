import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import {
  type KryptonEvents,
  type KryptonHandle,
  REGISTER_PATH,
  start,
} from '../../simulators/krypton/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';

let pki: PkiHandle;
let leaf: { chainPem: string; keyPem: string };
let krypton: KryptonHandle | undefined;

beforeAll(async () => {
  pki = await startPki();
  leaf = await pki.issueServer(['krypton.lab.test', '127.0.0.1']);
});
afterAll(async () => {
  await pki.stop();
});
afterEach(async () => {
  await krypton?.stop();
  krypton = undefined;
});

async function post(
  path = REGISTER_PATH,
  method = 'POST',
): Promise<{ status: number; body: Record<string, unknown> }> {
  const ep = krypton!.endpoints[0]!;
  const { request } = await import('node:https');
  return new Promise((resolve, reject) => {
    const req = request(
      { host: ep.host, port: ep.port, path, method, ca: pki.root.certPem, servername: 'krypton.lab.test' },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(data || '{}') }));
      },
    );
    req.on('error', reject);
    req.setTimeout(5_000, () => req.destroy(new Error('timeout')));
    req.end('{}');
  });
}

function nextEvent<K extends keyof KryptonEvents & string>(
  h: KryptonHandle,
  type: K,
): Promise<KryptonEvents[K]> {
  return new Promise((resolve, reject) => {
    const t = setTimeout(() => reject(new Error(`no ${type} event in 5 s`)), 5_000);
    h.events.once(type, (d: KryptonEvents[K]) => {
      clearTimeout(t);
      resolve(d);
    });
  });
}

describe('krypton simulator', () => {
  it('refuses a request from outside the SIM network (default 100.64.0.0/10) with 403', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem });
    const ev = nextEvent(krypton, 'register');
    const r = await post();
    expect(r.status).toBe(403);
    expect(r.body.code).toBe('FORBIDDEN');
    expect(await ev).toEqual({ source: '127.0.0.1', allowed: false, status: 403 });
    expect(krypton.stats()).toMatchObject({ denied: 1, registrations: 0 });
  });

  it('returns the credentials the provision callback gives for the source address', async () => {
    const seen: string[] = [];
    krypton = await start({
      certPem: leaf.chainPem,
      keyPem: leaf.keyPem,
      allowedSources: ['127.0.0.0/8'],
      provision: (source) => {
        seen.push(source);
        return {
          deviceId: 'dev-1',
          registrationId: 'dev-1',
          assignedHub: 'hub-a.azure-devices.net',
          symmetricKey: 'a2V5',
        };
      },
    });
    const ev = nextEvent(krypton, 'register');
    const r = await post();
    expect(r.status).toBe(200);
    expect(r.body).toEqual({
      deviceId: 'dev-1',
      registrationId: 'dev-1',
      assignedHub: 'hub-a.azure-devices.net',
      symmetricKey: 'a2V5',
    });
    expect(seen).toEqual(['127.0.0.1']);
    expect(await ev).toMatchObject({ source: '127.0.0.1', allowed: true, status: 200, deviceId: 'dev-1' });
  });

  it('gives a stable default identity, 404 for other paths, 405 (with Allow) for other methods', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem, allowedSources: ['127.0.0.1'] });
    const a = await post();
    const b = await post();
    expect(a.body.deviceId).toBe('krypton-127-0-0-1');
    expect(typeof a.body.symmetricKey).toBe('string');
    expect(b.body).toEqual(a.body);
    expect((await post('/v1/provisioning/aws/iot/bootstrap')).status).toBe(404);
    expect((await post(REGISTER_PATH, 'GET')).status).toBe(405);
  });

  it('rejects bad options with E_BAD_OPTION naming the field', async () => {
    await expect(
      start({ certPem: leaf.chainPem, keyPem: leaf.keyPem, allowedSources: ['not-a-net'] }),
    ).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
      message: expect.stringContaining('allowedSources'),
    });
    await expect(start({ certPem: '', keyPem: leaf.keyPem })).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });

  it('stops idempotently with no open connections', async () => {
    krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem });
    await post();
    await Promise.all([krypton.stop(), krypton.stop()]);
    await expect(post()).rejects.toThrow();
  });

  describe.skipIf(missing('cmd:curl'))('with curl, as in the seed', () => {
    it('POSTs with curl and reads the JSON credentials', async () => {
      krypton = await start({ certPem: leaf.chainPem, keyPem: leaf.keyPem, allowedSources: ['127.0.0.0/8'] });
      const ep = krypton.endpoints[0]!;
      const r = await execa(
        'curl',
        [
          '-sS',
          '--max-time',
          '5',
          '-X',
          'POST',
          '-H',
          'Content-Type: application/json',
          '--resolve',
          `krypton.lab.test:${ep.port}:127.0.0.1`,
          '--cacert',
          pki.trust.bundlePath,
          `https://krypton.lab.test:${ep.port}${REGISTER_PATH}`,
        ],
        { reject: false, timeout: 10_000 },
      );
      expect(r.exitCode).toBe(0);
      expect(JSON.parse(r.stdout)).toMatchObject({
        deviceId: 'krypton-127-0-0-1',
        assignedHub: 'fieldlab-hub.azure-devices.net',
      });
    });
  });
});
