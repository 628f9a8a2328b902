import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { clientValues } from '../../harness/cli/up.js';
import { startUpLab } from '../../harness/lab/up-lab.js';
import { assertBuilt, cliBackground } from '../helpers/cli.js';
import { within } from '../helpers/within.js';

/**
 * `fieldlab up` prints each simulator's client values (what a scenario's client gets as
 * `${hub.connectionString}`), so a person can point their own device at the running lab.
 */
let tmp: string;
let env: Record<string, string>;
beforeAll(() => assertBuilt());
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-up-values-'));
  env = { FIELDLAB_STATE_DIR: join(tmp, 'state') };
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

describe('fieldlab up: client values', () => {
  it('lists every simulator value as the scenario client gets it', { timeout: 60_000 }, async () => {
    process.env.FIELDLAB_STATE_DIR = env.FIELDLAB_STATE_DIR;
    const lab = await startUpLab('scenarios/wrong-device-key.yaml', {});
    try {
      const values = Object.fromEntries(clientValues(lab).map((v) => [v.ref, v.value]));
      expect(values['hub.connectionString']).toMatch(
        /^HostName=hub\.iot\.example\.com;DeviceId=sensor-7;SharedAccessKey=\S+$/,
      );
      expect(values['hub.connectionString']).toBe(lab.interpolate('${hub.connectionString}', 'client'));
      expect(Object.keys(values)).toContain('hub.cs-sensor-7');
    } finally {
      await lab.stop();
      delete process.env.FIELDLAB_STATE_DIR;
    }
  });

  it('prints them as `${ref}  value` lines', { timeout: 60_000 }, async () => {
    const child = cliBackground(['up', 'scenarios/wrong-device-key.yaml'], env);
    try {
      const text = await within(
        new Promise<string>((resolve) => {
          let buf = '';
          child.stdout?.on('data', (d: Buffer) => {
            buf += d.toString();
            if (buf.includes('\nhosts:')) resolve(buf);
          });
        }),
        30_000,
        'fieldlab up to print its hosts',
      );
      expect(text).toContain('values for clients');
      expect(text).toMatch(
        /^ {2}\$\{hub\.connectionString\}\s+HostName=hub\.iot\.example\.com;DeviceId=sensor-7;SharedAccessKey=\S+$/m,
      );
    } finally {
      child.kill('SIGINT');
      await within(Promise.resolve(child), 20_000, 'fieldlab up to stop');
    }
  });
});
