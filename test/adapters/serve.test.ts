import { Resolver } from 'node:dns/promises';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { assertBuilt, cli, cliBackground } from '../helpers/cli.js';
import { within } from '../helpers/within.js';

/** `fieldlab serve` runs the registry's types: here one the old 8-type table of cli/serve.ts lacked. */

let tmp: string;
let env: Record<string, string>;
beforeAll(() => assertBuilt());
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-serve-'));
  env = { FIELDLAB_STATE_DIR: join(tmp, 'state') };
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

describe('fieldlab serve', () => {
  it('serves a resolver alone from its own options, answers a real DNS query, and stops on SIGTERM', async () => {
    const options = { name: 'office-dns', hosts: { 'hub.lab.example': '127.0.0.9' } };
    const child = cliBackground(
      ['serve', 'resolver', '--host', '127.0.0.1', '--options', JSON.stringify(options)],
      env,
    );
    try {
      const ready = await within(
        new Promise<{ ready: boolean; name: string; endpoints: Array<{ name: string; port: number }> }>(
          (resolve) => {
            let text = '';
            child.stdout?.on('data', (d: Buffer) => {
              text += d.toString();
              const line = text.split('\n').find((l) => l.startsWith('{'));
              if (line) resolve(JSON.parse(line));
            });
          },
        ),
        20_000,
        "serve's ready line",
      );
      expect(ready).toMatchObject({ ready: true, name: 'office-dns' });
      const udp = ready.endpoints.find((e) => e.name === 'dns-udp');
      expect(udp?.port).toBeGreaterThan(0);
      const resolver = new Resolver({ timeout: 2000, tries: 1 });
      resolver.setServers([`127.0.0.1:${udp?.port}`]);
      expect(await resolver.resolve4('hub.lab.example')).toEqual(['127.0.0.9']);
    } finally {
      child.kill('SIGTERM');
    }
    expect((await within(child, 10_000, 'serve to stop')).exitCode).toBe(0);
  });

  it("refuses an unknown type and a bad option with the simulator's own field name", async () => {
    const unknown = await cli(['serve', 'nope'], { env });
    expect(unknown.code).toBe(2);
    expect(unknown.stderr).toContain('unknown simulator nope');
    expect(unknown.stderr).toMatch(/servable: .*krypton.*resolver.*sshd/);
    const bad = await cli(['serve', 'resolver', '--options', '{"retries":"many"}'], { env });
    expect(bad.code).toBe(2);
    expect(bad.stderr).toContain('resolver: options.retries');
    expect(bad.stderr).not.toMatch(/^\s+at /m);
  });
});
