import { randomBytes } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { start, type TlsInspectorHandle } from '../../simulators/tls-inspector/index.js';
import { missing } from '../helpers/capability.js';
import {
  type HttpsTarget,
  inspectorCa,
  labCa,
  nextEvent,
  run,
  startHttpsTarget,
  tempFiles,
} from './helpers.js';

let target: HttpsTarget;
let inspector: TlsInspectorHandle;
let files: ReturnType<typeof tempFiles>;

beforeEach(async () => {
  target = await startHttpsTarget();
  const lab = await labCa();
  inspector = await start({
    ca: await inspectorCa(),
    upstreamCa: [lab.root.certPem],
    map: { 'api.lab.example:443': `127.0.0.1:${target.port}` },
  });
  files = tempFiles({
    'inspector-root.pem': inspector.rootPem,
    'body.bin': randomBytes(64 * 1024).toString('latin1'),
  });
});

afterEach(async () => {
  await inspector.stop();
  await target.stop();
  files.remove();
});

const proxy = () => inspector.proxyUrl();

describe.skipIf(missing('cmd:curl'))('tls-inspector with curl', () => {
  it('without the inspector root: curl exits 60 and the inspector saw alert unknown_ca', async () => {
    const clientError = nextEvent(inspector.events, 'tls-client-error');
    const r = await run('curl', ['-sS', '-x', proxy(), 'https://api.lab.example/']);
    expect(r.code).toBe(60);
    expect(r.stderr).toMatch(/SSL certificate problem/);
    // OpenSSL sends alert 48 when it cannot find the issuer of the chain (RFC 8446 §6.2 unknown_ca).
    expect(await clientError).toMatchObject({
      host: 'api.lab.example',
      alert: 'unknown_ca',
      code: 'ERR_SSL_TLSV1_ALERT_UNKNOWN_CA',
    });
    expect(inspector.stats()).toMatchObject({ clientRejected: 1, intercepted: 0 });
  });

  it('with --cacert <inspector root>: 200, the body intact, the leaf issued by the inspector', async () => {
    const out = files.path('out.bin');
    const closed = nextEvent(inspector.events, 'closed');
    const r = await run('curl', [
      '-sS',
      '-v',
      '-x',
      proxy(),
      '--cacert',
      files.path('inspector-root.pem'),
      '--data-binary',
      `@${files.path('body.bin')}`,
      '-o',
      out,
      '-w',
      '%{http_code}',
      'https://api.lab.example/echo',
    ]);
    expect(r.code).toBe(0);
    expect(r.stdout).toBe('200');
    expect(readFileSync(out).equals(readFileSync(files.path('body.bin')))).toBe(true);
    expect(r.stderr).toMatch(/issuer: (?:[^\n]*[;,] ?)?CN ?= ?fieldlab test Inspector Issuing CA/);
    expect(r.stderr).toMatch(/subjectAltName: host "api\.lab\.example" matched/);
    const c = await closed;
    expect(c.bytesIn).toBeGreaterThan(64 * 1024);
    expect(c.bytesOut).toBeGreaterThan(64 * 1024);
  });
});

describe.skipIf(missing('cmd:openssl'))('tls-inspector with openssl s_client -proxy', () => {
  it('shows the inspector as issuer and verifies with its root', async () => {
    const r = await run('openssl', [
      's_client',
      '-proxy',
      `127.0.0.1:${inspector.endpoints[0]!.port}`,
      '-connect',
      'api.lab.example:443',
      '-servername',
      'api.lab.example',
      '-CAfile',
      files.path('inspector-root.pem'),
      '-showcerts',
      '-brief',
    ]);
    const all = r.stdout + r.stderr;
    expect(all).toMatch(/Verification: OK/);
    const full = await run('openssl', [
      's_client',
      '-proxy',
      `127.0.0.1:${inspector.endpoints[0]!.port}`,
      '-connect',
      'api.lab.example:443',
      '-servername',
      'api.lab.example',
      '-showcerts',
    ]);
    // Depth 0 is the forged leaf for the name, issued by the inspector's intermediate.
    expect(full.stdout).toMatch(
      / 0 s:[^\n]*CN ?= ?api\.lab\.example\n\s+i:[^\n]*CN ?= ?fieldlab test Inspector Issuing CA/,
    );
    // Without the inspector root: X509_V_ERR_UNABLE_TO_GET_ISSUER_CERT_LOCALLY.
    expect(full.stdout).toMatch(/Verify return code: 20 /);
  });
});
