import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { splitCommand } from '../../harness/cli/init.js';
import type { RunResult } from '../../harness/runner/result.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli } from '../helpers/cli.js';

let tmp: string;
let env: Record<string, string>;
beforeAll(() => {
  assertBuilt();
  tmp = mkdtempSync(join(tmpdir(), 'fl-init-'));
  env = { FIELDLAB_STATE_DIR: join(tmp, 'state') };
});
afterAll(() => rmSync(tmp, { recursive: true, force: true }));

const validate = new Ajv2020({ strict: false, allErrors: true }).compile(
  JSON.parse(readFileSync('scenarios/schema.json', 'utf8')),
);

/** Each cloud, our example device program for it, and what each written variant must end with. */
const CASES: Array<{ cloud: string; proxy: boolean; program: string; verdicts: Record<string, string> }> = [
  {
    cloud: 'azure',
    proxy: false,
    program: 'azure-device',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'tcp.refused',
      'broken-dns-servfail': 'dns.servfail',
      'broken-proxy-auth': 'proxy.auth-required',
      'fixed-proxy-auth': 'pass',
      'broken-inspection-untrusted': 'tls.untrusted-root',
      'fixed-inspection-trusted': 'pass',
    },
  },
  {
    cloud: 'azure',
    proxy: true,
    program: 'azure-device',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'proxy.connect-denied',
      'broken-proxy-auth': 'proxy.auth-required',
      'broken-inspection-untrusted': 'tls.untrusted-root',
      'fixed-inspection-trusted': 'pass',
    },
  },
  {
    cloud: 'aws',
    proxy: false,
    program: 'aws-iot-publish',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'tcp.refused',
      'broken-dns-servfail': 'dns.servfail',
      'broken-untrusted-root': 'tls.untrusted-root',
    },
  },
  {
    cloud: 'mqtt',
    proxy: false,
    program: 'mqtt-device',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'tcp.refused',
      'broken-dns-servfail': 'dns.servfail',
      'broken-proxy-auth': 'proxy.auth-required',
      'fixed-proxy-auth': 'pass',
      'broken-inspection-untrusted': 'tls.untrusted-root',
      'fixed-inspection-trusted': 'pass',
    },
  },
  {
    cloud: 'https',
    proxy: false,
    program: 'https-device',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'tcp.refused',
      'broken-dns-servfail': 'dns.servfail',
      'broken-proxy-auth': 'proxy.auth-required',
      'fixed-proxy-auth': 'pass',
      'broken-inspection-untrusted': 'tls.untrusted-root',
      'fixed-inspection-trusted': 'pass',
    },
  },
  {
    cloud: 'https',
    proxy: true,
    program: 'https-device',
    verdicts: {
      fixed: 'pass',
      'broken-port-blocked': 'proxy.connect-denied',
      'broken-proxy-auth': 'proxy.auth-required',
      'broken-inspection-untrusted': 'tls.untrusted-root',
      'fixed-inspection-trusted': 'pass',
    },
  },
];

describe('fieldlab init', () => {
  describe.each(CASES)('--cloud $cloud (proxy: $proxy)', ({ cloud, proxy, program, verdicts }) => {
    const file = () => join(tmp, `${cloud}${proxy ? '-proxy' : ''}.yaml`);

    it('writes a scenario the published schema accepts, with the variants and their expected classes', async () => {
      const r = await cli(
        [
          'init',
          '--client',
          `node dist/examples/${program}.js`,
          '--cloud',
          cloud,
          ...(proxy ? ['--proxy'] : []),
        ].concat(['--out', file()]),
        { env },
      );
      expect(r.code, r.stderr).toBe(0);
      expect(r.stdout).toContain(`fieldlab run ${file()}`);
      const text = readFileSync(file(), 'utf8');
      expect(text).toMatch(/^# fieldlab starter scenario/);
      expect(text).toContain('To adapt it:');
      const doc = parse(text) as {
        client: { argv: string[]; env: Record<string, string> };
        variants: Array<{ name: string; expect: { result: string; class?: string } }>;
      };
      expect(validate(doc), JSON.stringify(validate.errors)).toBe(true);
      expect(doc.client.argv).toEqual(['node', `dist/examples/${program}.js`]);
      expect(
        Object.fromEntries(doc.variants.map((v) => [v.name, v.expect.class ?? v.expect.result])),
      ).toEqual(verdicts);
    });

    it.skipIf(missing('userns'))('runs at once against our example device with those verdicts', async () => {
      const out = join(tmp, `report-${cloud}${proxy ? '-proxy' : ''}`);
      const r = await cli(['run', file(), '--reporter', 'json', '--out', out], { env, timeoutMs: 180_000 });
      const report = JSON.parse(readFileSync(join(out, 'fieldlab-report.json'), 'utf8')) as RunResult;
      const seen = Object.fromEntries(
        report.results.map((v) => [v.variant, v.observed?.class ?? v.observed?.result ?? v.status]),
      );
      expect(seen, r.stdout).toEqual(verdicts);
      expect(report.results.filter((v) => v.status !== 'passed')).toEqual([]);
      expect(r.code).toBe(0);
    });
  });

  it('prints to standard output with --out -, named after the program', async () => {
    const r = await cli(['init', '--client', 'python3 my_device.py', '--cloud', 'mqtt', '--out', '-'], {
      env,
    });
    expect(r.code).toBe(0);
    const doc = parse(r.stdout) as { name: string; client: { argv: string[] } };
    expect(doc.name).toBe('my-device');
    expect(doc.client.argv).toEqual(['python3', 'my_device.py']);
  });

  it('never overwrites a file without --force (exit 2, naming it)', async () => {
    const f = join(tmp, 'mine.yaml');
    writeFileSync(f, 'my own work\n');
    const r = await cli(['init', '--client', 'python3 d.py', '--cloud', 'https', '--out', f], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain(`${f} already exists`);
    expect(r.stderr).toContain('--force');
    expect(readFileSync(f, 'utf8')).toBe('my own work\n');
    const forced = await cli(
      ['init', '--client', 'python3 d.py', '--cloud', 'https', '--out', f, '--force'],
      {
        env,
      },
    );
    expect(forced.code).toBe(0);
    expect(readFileSync(f, 'utf8')).toContain('type: https-server');
  });

  it.each([
    [['--client', 'x'], /--cloud/],
    [['--cloud', 'azure'], /--client/],
    [['--client', 'x', '--cloud', 'gcp'], /gcp.*invalid|Allowed choices/s],
    [['--client', 'x', '--cloud', 'aws', '--proxy'], /--proxy is not available with --cloud aws/],
    [['--client', "python3 'my device.py", '--cloud', 'aws'], /unclosed '/],
  ])('a usage error %j exits 2 and says what is wrong', async (args, message) => {
    const r = await cli(['init', ...args, '--out', join(tmp, 'never.yaml')], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toMatch(message);
    expect(existsSync(join(tmp, 'never.yaml'))).toBe(false);
  });

  it('--help describes it', async () => {
    const r = await cli(['init', '--help'], { env });
    expect(r.code).toBe(0);
    expect(r.stdout).toContain('--cloud <cloud>');
    expect(r.stdout.replace(/\s+/g, ' ')).toContain('(choices: "azure", "aws", "mqtt", "https")');
  });
});

describe('splitCommand', () => {
  it.each([
    ['python3 my_device.py', ['python3', 'my_device.py']],
    ['  node   dist/x.js  --flag ', ['node', 'dist/x.js', '--flag']],
    [`python3 'my device.py' "a \\"b\\"" c\\ d ''`, ['python3', 'my device.py', 'a "b"', 'c d', '']],
    ['', []],
  ])('%j', (line, words) => {
    expect(splitCommand(line)).toEqual(words);
  });
});
