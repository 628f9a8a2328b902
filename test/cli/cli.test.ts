import { Resolver } from 'node:dns/promises';
import { existsSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { XMLParser } from 'fast-xml-parser';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { missing } from '../helpers/capability.js';
import { assertBuilt, cli, cliBackground } from '../helpers/cli.js';

let tmp: string;
let env: Record<string, string>;
beforeAll(() => assertBuilt());
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-cli-'));
  env = { FIELDLAB_STATE_DIR: join(tmp, 'state') };
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

/** Resolves when a TCP connect to host:port is refused (the port is closed), bounded. */
function connectOutcome(host: string, port: number): Promise<'open' | 'refused'> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port });
    const t = setTimeout(() => reject(new Error('connect neither succeeded nor was refused in 5 s')), 5000);
    s.once('connect', () => {
      clearTimeout(t);
      s.destroy();
      resolve('open');
    });
    s.once('error', (e: NodeJS.ErrnoException) => {
      clearTimeout(t);
      if (e.code === 'ECONNREFUSED') resolve('refused');
      else reject(e);
    });
  });
}

describe('fieldlab CLI', () => {
  it('has --help on every command', async () => {
    for (const cmd of ['run', 'up', 'ca', 'clean', 'list', 'schema', 'serve']) {
      const r = await cli([cmd, '--help']);
      expect(r.code, cmd).toBe(0);
      expect(r.stdout).toContain(`Usage: fieldlab ${cmd}`);
    }
    const top = await cli(['--help']);
    expect(top.stdout).toMatch(/run \[options\] \[paths\.\.\.\]/);
  });

  it('exits 2 with the file, line and field for a bad scenario, and no stack trace', async () => {
    const bad = join(tmp, 'bad.yaml');
    writeFileSync(
      bad,
      'name: bad\ntitle: Bad\nlab:\n  simulators:\n    - { name: api, type: https-server, host: api.example.com, port: -1 }\nclient: { type: command, argv: [curl] }\nvariants:\n  - { name: broken, expect: pass }\n  - { name: fixed, expect: pass }\n',
    );
    const r = await cli(['run', bad], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('bad.yaml:5');
    expect(r.stderr).toContain('lab.simulators[0].port');
    expect(r.stderr).toContain('hint:');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });

  it('exits 2 for a bad flag value, on subcommands too, naming the flag; --help exits 0', async () => {
    const backend = await cli(['run', '--backend', 'bogus']);
    expect(backend.code).toBe(2);
    expect(backend.stderr).toContain("'-b, --backend <name>' argument 'bogus' is invalid");
    const sub = await cli(['localproxy', '--subprotocol', '4', '-t', 'x', '-s', '0']);
    expect(sub.code).toBe(2);
    expect(sub.stderr).toContain('--subprotocol');
    expect((await cli(['localproxy', '--help'])).code).toBe(0);
  });

  it('exits 2 for an unknown --only selector, naming it', async () => {
    const r = await cli(['run', 'scenarios/https-endpoint.yaml', '--only', 'nope'], { env });
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('--only nope');
  });

  it('lists scenarios with variants and expectations, and simulator types', async () => {
    const r = await cli(['list', 'scenarios']);
    expect(r.code).toBe(0);
    expect(r.stdout).toMatch(/https-endpoint/);
    expect(r.stdout).toMatch(/broken-timeout\s+expect fail tcp\.timeout/);
    const sims = await cli(['list', '--simulators']);
    expect(sims.stdout).toMatch(/^https-server\s/m);
  });

  it('prints the scenario JSON Schema', async () => {
    const r = await cli(['schema']);
    expect(r.code).toBe(0);
    const schema = JSON.parse(r.stdout) as { $id: string; properties: Record<string, unknown> };
    expect(schema.$id).toBe('urn:fieldlab:schema:scenario:1');
    expect(Object.keys(schema.properties)).toEqual(
      expect.arrayContaining(['name', 'lab', 'client', 'variants']),
    );
  });

  it('`serve` runs one simulator from JSON options, reports ready with its endpoints, and stops on SIGTERM', async () => {
    const options = {
      zones: [
        {
          origin: 'lab.example',
          soa: { mname: 'ns.lab.example', rname: 'h.lab.example' },
          records: [{ name: 'a', type: 'A', value: '127.0.0.9' }],
        },
      ],
    };
    const child = cliBackground(
      ['serve', 'geo-dns', '--host', '127.0.0.1', '--options', JSON.stringify(options)],
      env,
    );
    const ready = await new Promise<{ ready: boolean; endpoints: Array<{ name: string; port: number }> }>(
      (resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no ready line within 20 s')), 20_000);
        child.stdout?.on('data', (d: Buffer) => {
          const line = d
            .toString()
            .split('\n')
            .find((l) => l.startsWith('{'));
          if (line) {
            clearTimeout(t);
            resolve(JSON.parse(line));
          }
        });
      },
    );
    expect(ready.ready).toBe(true);
    const udp = ready.endpoints.find((e) => e.name === 'dns-udp')!;
    const resolver = new Resolver({ timeout: 2000, tries: 1 });
    resolver.setServers([`127.0.0.1:${udp.port}`]);
    expect(await resolver.resolve4('a.lab.example')).toEqual(['127.0.0.9']);
    child.kill('SIGTERM');
    expect((await child).exitCode).toBe(0);

    const bad = await cli(['serve', 'https-server', '--options', '{"port":"x"}']);
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('options.port');
  });

  describe.skipIf(missing('cmd:curl', 'userns'))('with real clients', () => {
    it('runs a scenario: table on stdout, JSON and JUnit written, exit 0', async () => {
      const out = join(tmp, 'report');
      const r = await cli(
        ['run', 'scenarios/https-endpoint.yaml', '--out', out, '-r', 'console,json,junit,html'],
        { env },
      );
      expect(r.stderr + r.stdout).toMatch(/4 passed, 0 failed/);
      expect(r.code).toBe(0);
      expect(r.stdout).toContain('broken-untrusted-root');
      const json = JSON.parse(readFileSync(join(out, 'fieldlab-report.json'), 'utf8'));
      expect(json.totals).toMatchObject({ passed: 4, failed: 0 });
      const xml = new XMLParser({ ignoreAttributes: false }).parse(
        readFileSync(join(out, 'junit.xml'), 'utf8'),
      );
      expect(Number(xml.testsuites['@_tests'])).toBe(4);
      expect(Number(xml.testsuites['@_failures'])).toBe(0);
      expect(existsSync(join(out, 'report.html'))).toBe(true);
    });

    it('exits 1 when a variant does not fail the way it expects', async () => {
      const s = readFileSync('scenarios/https-endpoint.yaml', 'utf8').replace(
        'class: tcp.reset',
        'class: tcp.refused',
      );
      const file = join(tmp, 'wrong.yaml');
      writeFileSync(file, s);
      const r = await cli(['run', file, '--only', 'https-endpoint/broken-reset', '--out', join(tmp, 'r')], {
        env,
      });
      expect(r.code).toBe(1);
      expect(r.stdout).toMatch(/expected fail tcp\.refused, observed fail tcp\.reset/);
    });

    it('`up` serves the lab and `ca` writes its root; after SIGKILL `clean` removes what it left', async () => {
      const child = cliBackground(['up', 'scenarios/https-endpoint.yaml', '--json'], env);
      const info = await new Promise<{
        labId: string;
        dir: string;
        caBundle: string;
        endpoints: Array<{ address: string; port: number }>;
      }>((resolve, reject) => {
        let buf = '';
        const t = setTimeout(() => reject(new Error(`no endpoints line within 20 s: ${buf}`)), 20_000);
        child.stdout?.on('data', (d: Buffer) => {
          buf += d.toString();
          const line = buf.split('\n').find((l) => l.startsWith('{'));
          if (line) {
            clearTimeout(t);
            resolve(JSON.parse(line));
          }
        });
      });
      const ep = info.endpoints[0]!;
      expect(await connectOutcome(ep.address, ep.port)).toBe('open');
      expect(existsSync(info.dir)).toBe(true);

      const caOut = join(tmp, 'ca.pem');
      const ca = await cli(['ca', '--out', caOut], { env });
      expect(ca.code).toBe(0);
      expect(readFileSync(caOut, 'utf8')).toBe(readFileSync(info.caBundle, 'utf8'));

      // A live lab is left alone by a plain clean.
      const early = await cli(['clean'], { env });
      expect(early.stdout).toContain('left running lab');

      child.kill('SIGKILL');
      await child;
      expect(await connectOutcome(ep.address, ep.port)).toBe('refused');
      expect(existsSync(info.dir)).toBe(true); // SIGKILL left its files behind...
      const r = await cli(['clean'], { env });
      expect(r.code).toBe(0);
      expect(r.stdout).toContain(`removed lab ${info.labId}`);
      expect(existsSync(info.dir)).toBe(false); // ...and clean removed them, keys included,
      expect(readdirSync(join(env.FIELDLAB_STATE_DIR!, 'blocks'))).toEqual([]); // and the address claim.
      const again = await cli(['clean'], { env });
      expect(again.stdout).toContain('nothing to clean');
    });

    it('`up` stops cleanly on SIGTERM, removing its files', async () => {
      const child = cliBackground(['up', 'scenarios/https-endpoint.yaml', '--json'], env);
      const dir = await new Promise<string>((resolve, reject) => {
        const t = setTimeout(() => reject(new Error('no endpoints line within 20 s')), 20_000);
        child.stdout?.on('data', (d: Buffer) => {
          const line = d
            .toString()
            .split('\n')
            .find((l) => l.startsWith('{'));
          if (line) {
            clearTimeout(t);
            resolve((JSON.parse(line) as { dir: string }).dir);
          }
        });
      });
      child.kill('SIGTERM');
      const r = await child;
      expect(r.exitCode).toBe(0);
      expect(existsSync(dir)).toBe(false);
    });
  });
});
