import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { createServer, type Server } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveFileRefs } from '../../harness/cli/serve.js';
import { listen } from '../../simulators/common/net.js';
import { assertBuilt, cli } from '../helpers/cli.js';

/** The commands a container runs besides `serve`: `pki` (the shared lab CA) and `health` (the healthcheck). */
let dir: string;
beforeAll(() => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'fl-cc-'));
});
afterAll(() => rmSync(dir, { recursive: true, force: true }));

describe('fieldlab pki', () => {
  it('writes a CA and server certificates openssl verifies, and keeps them on a second run', async () => {
    const lab = join(dir, 'lab');
    const r = await cli([
      'pki',
      '--dir',
      lab,
      '--server',
      'hub.iot.example.com,hub',
      '--server',
      'mqtt.example.com',
    ]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('wrote');
    const hub = join(lab, 'hub.iot.example.com.pem');
    const verify = execFileSync(
      'openssl',
      ['verify', '-CAfile', join(lab, 'ca.pem'), '-untrusted', hub, hub],
      {
        encoding: 'utf8',
      },
    );
    expect(verify).toContain(': OK');
    const san = execFileSync('openssl', ['x509', '-in', hub, '-noout', '-ext', 'subjectAltName'], {
      encoding: 'utf8',
    });
    expect(san).toMatch(/DNS:hub\.iot\.example\.com, DNS:hub/);
    expect(statSync(join(lab, 'mqtt.example.com-key.pem')).mode & 0o777).toBe(0o600);
    const ca = readFileSync(join(lab, 'ca.pem'), 'utf8');
    const again = await cli(['pki', '--dir', lab, '--server', 'hub.iot.example.com,hub']);
    expect(again.code).toBe(0);
    expect(readFileSync(join(lab, 'ca.pem'), 'utf8')).toBe(ca);
  });

  it('refuses to add a certificate to a CA whose key it no longer has, and says what to do', async () => {
    // Its own directory with a CA in it: this test does not lean on the one before.
    const lab = join(dir, 'lab-kept');
    expect((await cli(['pki', '--dir', lab, '--server', 'hub'])).code).toBe(0);
    const r = await cli(['pki', '--dir', lab, '--server', 'new.example.com']);
    expect(r.code).toBe(2);
    expect(r.stderr).toContain('new.example.com');
    expect(r.stderr).toContain('docker compose down -v');
    expect(r.stderr).not.toMatch(/\n\s+at /);
  });
});

describe('fieldlab health', () => {
  let server: Server;
  let port: number;
  beforeAll(async () => {
    server = createServer((s) => s.end());
    port = await listen(server, '127.0.0.1', 0);
  });
  afterAll(() => new Promise<void>((r) => server.close(() => r())));

  const ready = (endpoints: unknown[]) => {
    const f = join(dir, `ready-${Math.random().toString(36).slice(2)}.json`);
    writeFileSync(f, JSON.stringify({ ready: true, name: 'sim', endpoints }));
    return f;
  };

  it('is healthy when every TCP endpoint answers (UDP ones are not tried)', async () => {
    const f = ready([
      { name: 'main', host: '0.0.0.0', port, protocol: 'https' },
      { name: 'dns-udp', host: '127.0.0.1', port: 1, protocol: 'dns-udp' },
    ]);
    const r = await cli(['health', '--ready-file', f]);
    expect(r.code, r.stderr).toBe(0);
    expect(r.stdout).toContain('sim ok (1 endpoint(s))');
  });

  it('is unhealthy, naming the endpoint, when one does not answer or nothing is ready yet', async () => {
    const closed = createServer();
    const dead = await listen(closed, '127.0.0.1', 0);
    await new Promise<void>((r) => closed.close(() => r()));
    const r = await cli([
      'health',
      '--ready-file',
      ready([{ name: 'mqtts', host: '127.0.0.1', port: dead, protocol: 'mqtts' }]),
    ]);
    expect(r.code).toBe(1);
    expect(r.stderr).toContain(`mqtts 127.0.0.1:${dead}: ECONNREFUSED`);
    const none = await cli(['health', '--ready-file', join(dir, 'never-written.json')]);
    expect(none.code).toBe(1);
    expect(none.stderr).toContain('not ready');
  });
});

describe('serve options from files', () => {
  it('replaces {"$file": path} with the file, deeply, and names a missing one', () => {
    const pem = join(dir, 'cert.pem');
    writeFileSync(pem, 'PEM');
    expect(resolveFileRefs({ tls: { certPem: { $file: pem } }, list: [{ $file: pem }], n: 1 })).toEqual({
      tls: { certPem: 'PEM' },
      list: ['PEM'],
      n: 1,
    });
    expect(() => resolveFileRefs({ tls: { keyPem: { $file: join(dir, 'nope.pem') } } })).toThrow(
      /options\.tls\.keyPem: cannot read .*nope\.pem/,
    );
  });
});
