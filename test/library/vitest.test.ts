import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { get } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineScenario, runScenario } from '../../harness/index.js';
import { type UsedLab, useLab } from '../../harness/vitest.js';
import { within } from '../helpers/within.js';

let state: string;
beforeAll(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-vitest-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterAll(() => {
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

/** GET a lab URL with Node's own client, trusting only the lab CA, resolving through the lab. */
function fetchStatus(lab: UsedLab, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(url, { ca: lab.ca.pem, lookup: lab.lab.lookup }, (res) => {
      res.resume();
      res.once('end', () => resolve(res.statusCode ?? 0));
    });
    req.once('error', reject);
  });
}

const probeScenario = defineScenario({
  name: 'matchers',
  title: 'A probe that fails on an untrusted root and passes with the lab CA',
  lab: { simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com' }] },
  client: { type: 'probe', url: '${api.url}', timeout: '5s' },
  variants: [
    {
      name: 'broken-untrusted',
      client: { trust: 'system' },
      expect: { result: 'fail', class: 'tls.untrusted-root' },
    },
    { name: 'fixed', expect: 'pass' },
  ],
});

describe('fieldlab/vitest: useLab', () => {
  let first: UsedLab | undefined;

  it("starts a scenario's lab with its addresses, CA and events", async () => {
    const lab = await useLab('scenarios/https-endpoint.yaml', { variant: 'fixed' });
    first = lab;
    expect(lab.addresses['api.iot.example.com']).toMatch(/^127\.\d+\.\d+\.\d+$/);
    expect(lab.ca.pem).toContain('BEGIN CERTIFICATE');
    expect(lab.env.NODE_EXTRA_CA_CERTS).toBe(lab.ca.file);
    expect(lab).not.toHaveSeen({ source: 'api', type: 'request' });

    expect(await within(fetchStatus(lab, lab.ref('api.url')), 10_000, 'the GET')).toBe(200);
    await within(lab.waitFor({ source: 'api', type: 'request' }), 10_000, 'the request event');
    expect(lab).toHaveSeen({ source: 'api', type: 'request', match: { path: '/', status: 200 } });
    expect(lab).toHaveSeen({ source: 'api', type: 'request', match: { path: expect.stringMatching(/^\//) } });
    expect(lab).not.toHaveSeen({ source: 'api', type: 'request', match: { status: 500 } });
    // A failed toHaveSeen shows what the lab did see.
    expect(() => expect(lab).toHaveSeen({ source: 'api', type: 'request', match: { status: 500 } })).toThrow(
      /"status":200/,
    );
  });

  it('stopped the previous test’s lab when that test finished', () => {
    expect(first).toBeDefined();
    expect(existsSync(first!.lab.dir)).toBe(false);
  });

  it("gives the scenario client's env with the variant's overrides, references filled in", async () => {
    const lab = await useLab('scenarios/mqtt-port-blocked.yaml', { variant: 'fixed' });
    expect(lab.env.UpstreamProtocol).toBe('MqttWs');
    expect(lab.env.IOTHUB_DEVICE_CONNECTION_STRING).toMatch(
      /HostName=hub\.iot\.example\.com;DeviceId=edge-1;/,
    );
    expect(lab.env.https_proxy).toBe(`http://proxy.corp.example.com:${lab.ref('proxy.port')}`);
  });

  it('names the variants when the one asked for is not there', async () => {
    await expect(useLab('scenarios/https-endpoint.yaml', { variant: 'nope' })).rejects.toMatchObject({
      code: 'E_BAD_FLAG',
      hint: expect.stringContaining('broken-timeout'),
    });
  });

  it('outside a test it needs stopAfterTest: false and an explicit stop', async () => {
    const lab = await useLab('scenarios/https-endpoint.yaml', { stopAfterTest: false });
    await lab.stop();
    expect(existsSync(lab.lab.dir)).toBe(false);
  });
});

describe('fieldlab/vitest: toFailWith', () => {
  it('passes for the failure class the run observed, and says what it observed otherwise', async () => {
    const broken = await runScenario(probeScenario, { only: ['broken-untrusted'] });
    expect(broken).toFailWith('tls.untrusted-root');
    expect(broken.results[0]).toFailWith('tls.untrusted-root');
    expect(broken).not.toFailWith('tcp.timeout');
    expect(() => expect(broken).toFailWith('tcp.timeout')).toThrow(
      /observed:\n.*failed with tls\.untrusted-root/,
    );

    const fixed = await runScenario(probeScenario, { only: ['fixed'] });
    expect(fixed).not.toFailWith('tls.untrusted-root');
    expect(() => expect(fixed).toFailWith('tls.untrusted-root')).toThrow(/matchers\/fixed: passed/);
    expect(fixed).toHaveSeen({ source: 'api', type: 'request' });
  });

  it('rejects a name that is not a failure class', async () => {
    const run = await runScenario(probeScenario, { only: ['fixed'] });
    // @ts-expect-error: not a failure class
    expect(() => expect(run).toFailWith('tcp.nope')).toThrow(/not a failure class/);
  });
});
