import { spawn } from 'node:child_process';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { container } from '../../harness/backends/container/index.js';
import { loopback } from '../../harness/backends/loopback/index.js';
import { loadYamlScenario } from '../../harness/scenario/load.js';
import { type AwsIotHandle, start } from '../../simulators/aws-iot/index.js';
import { isFieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import type { IssuedCertFiles, PkiHandle } from '../../simulators/pki/index.js';
import { start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';

/**
 * Device Advisor's "TLS Receive Maximum Size Fragments" offline: a device asks for max_fragment_length 512
 * (RFC 6066 §4); AWS IoT Core ignores it and sends 16 KB records. The persona with `maxFragmentLength:
 * ignore` serves its mqtts port through fieldlab-tls-front (Go crypto/tls); `honour` is Node's TLS server.
 * The client is the real `openssl s_client -maxfraglen 512 -tlsextdebug`, speaking MQTT 3.1.1 bytes.
 */

const TOPIC = 'things/sensor-1/large';
const MARKER = 'large-payload-end';
/** More than 16 KB, so full-size records are needed to carry it. */
const PAYLOAD = Buffer.concat([Buffer.alloc(40_000 - MARKER.length, 'x'), Buffer.from(MARKER)]);

function remainingLength(n: number): Buffer {
  const out: number[] = [];
  do {
    let b = n % 128;
    n = Math.floor(n / 128);
    if (n > 0) b |= 0x80;
    out.push(b);
  } while (n > 0);
  return Buffer.from(out);
}
const str = (s: string) => Buffer.concat([Buffer.from([s.length >> 8, s.length & 0xff]), Buffer.from(s)]);
const packet = (first: number, body: Buffer) =>
  Buffer.concat([Buffer.from([first]), remainingLength(body.length), body]);

/**
 * CONNECT (clean session, keep alive 2 s: the broker closes ~3 s after the device's last packet, which
 * ends s_client) and SUBSCRIBE at QoS 1 to TOPIC, where PAYLOAD waits retained (a device's own PUBLISH
 * sent blind after its SUBSCRIBE could be routed before the subscription is in place).
 */
function mqttSession(clientId: string): Buffer {
  const connect = packet(0x10, Buffer.concat([str('MQTT'), Buffer.from([4, 0x02, 0, 2]), str(clientId)]));
  const subscribe = packet(0x82, Buffer.concat([Buffer.from([0, 1]), str(TOPIC), Buffer.from([1])]));
  return Buffer.concat([connect, subscribe]);
}

interface Ran {
  code: number | null;
  stdout: string;
  stderr: string;
}

/** openssl s_client asking for max_fragment_length 512, the MQTT session on its stdin (kept open by -ign_eof). */
function sClient(port: number, ca: string, cert: IssuedCertFiles, clientId: string): Promise<Ran> {
  const child = spawn(
    'openssl',
    [
      's_client',
      '-connect',
      `127.0.0.1:${port}`,
      '-servername',
      'localhost',
      '-CAfile',
      ca,
      '-cert',
      cert.certPath,
      '-key',
      cert.keyPath,
      '-maxfraglen',
      '512',
      '-tlsextdebug',
      '-msg',
      '-ign_eof',
      '-verify_return_error',
    ],
    { stdio: ['pipe', 'pipe', 'pipe'] },
  );
  const out: Buffer[] = [];
  const err: Buffer[] = [];
  child.stdout.on('data', (b: Buffer) => out.push(b));
  child.stderr.on('data', (b: Buffer) => err.push(b));
  child.stdin.end(mqttSession(clientId));
  const done = new Promise<Ran>((resolve) =>
    child.once('close', (code) =>
      resolve({
        code,
        stdout: Buffer.concat(out).toString('latin1'),
        stderr: Buffer.concat(err).toString('latin1'),
      }),
    ),
  );
  return within(done, 20_000, 'openssl s_client').finally(() => child.kill());
}

const SERVER_MFL = /TLS server extension "max fragment length"/;

/** The largest application data record openssl received, from its -msg record headers (`17 03 03 LL LL`). */
function largestRecordReceived(stdout: string): number {
  let max = 0;
  for (const m of stdout.matchAll(/<<< [^\n]*RecordHeader[^\n]*\n\s+17 03 03 ([0-9a-f]{2}) ([0-9a-f]{2})/g)) {
    max = Math.max(max, Number.parseInt(`${m[1]}${m[2]}`, 16));
  }
  return max;
}

describe.skipIf(missing('tls-front', 'cmd:openssl'))('aws-iot maxFragmentLength', () => {
  let pki: PkiHandle;
  let server: IssuedCertFiles;
  let device: IssuedCertFiles;
  let rogue: IssuedCertFiles;
  let aws: AwsIotHandle | undefined;
  let seen: LabEvent[] = [];

  beforeAll(async () => {
    pki = await startPki({ name: 'pki' });
    server = await pki.issueServer(['localhost']);
    device = await pki.issueClient('sensor-1');
    rogue = await pki.issueClient('sensor-unregistered');
  });
  afterAll(() => pki.stop());
  afterEach(async () => {
    await aws?.stop();
    aws = undefined;
    seen = [];
  });

  async function startAws(maxFragmentLength: 'honour' | 'ignore'): Promise<number> {
    aws = await start({
      name: 'aws-us-east-1',
      tls: { certPem: server.chainPem, keyPem: server.keyPem },
      certificates: [{ pem: device.certPem, thingName: 'sensor-1' }],
      maxFragmentLength,
    });
    aws.events.onAny((e) => seen.push(e));
    // The large message waits retained: the device gets it as its subscription is made.
    const broker = aws.broker.broker;
    await new Promise<void>((resolve, reject) =>
      broker.publish(
        { cmd: 'publish', topic: TOPIC, payload: PAYLOAD, qos: 1, retain: true, dup: false },
        (err) => (err ? reject(err) : resolve()),
      ),
    );
    return aws.endpoints[0]!.port;
  }
  const of = (type: string) =>
    seen.filter((e) => e.type === type).map((e) => e.data as Record<string, unknown>);

  it('ignore: no max_fragment_length in the ServerHello, 16 KB records, the device certificate reaches the persona', async () => {
    const port = await startAws('ignore');
    const ran = await sClient(port, pki.trust.bundlePath, device, 'sensor-1');
    // The real client saw no echo, so it took 16 KB records, and decrypted the whole message.
    expect(ran.stdout).not.toMatch(SERVER_MFL);
    expect(ran.stdout).toContain(MARKER);
    // TLS 1.3: 16384 plaintext bytes + content type + 16-byte tag.
    expect(largestRecordReceived(ran.stdout)).toBe(16384 + 17);
    expect(ran.stdout).toMatch(/Verify return code: 0 \(ok\)/);
    // Authorised as its thing: its policy allowed things/sensor-1/..., so its certificate got through.
    expect(of('auth-denied')).toEqual([]);
    expect(of('subscribe')).toContainEqual({ clientId: 'sensor-1', topics: [TOPIC] });
    await within(
      new Promise<void>((r) =>
        of('tls-front').length > 0 ? r() : aws!.events.onceEvent('tls-front', () => r()),
      ),
      5_000,
      'the tls-front event',
    );
    expect(of('tls-front')[0]).toMatchObject({ mfl: 512, recordBytes: 16384 });
    expect(of('tls-established')[0]).toMatchObject({ alpn: false });
  });

  it('ignore: an unregistered certificate is refused by the persona, as without the front', async () => {
    const port = await startAws('ignore');
    const ran = await sClient(port, pki.trust.bundlePath, rogue, 'sensor-unregistered');
    expect(of('auth-denied')).toContainEqual(
      expect.objectContaining({
        clientId: 'sensor-unregistered',
        reason: expect.stringMatching(/neither registered/),
      }),
    );
    expect(of('subscribe')).toEqual([]);
    expect(ran.stdout).not.toContain(MARKER);
  });

  it('honour: Node echoes max_fragment_length and the device still gets the message in small records', async () => {
    const port = await startAws('honour');
    const ran = await sClient(port, pki.trust.bundlePath, device, 'sensor-1');
    expect(ran.stdout).toMatch(SERVER_MFL);
    expect(ran.stdout).toContain(MARKER);
    expect(largestRecordReceived(ran.stdout)).toBeGreaterThan(0);
    expect(largestRecordReceived(ran.stdout)).toBeLessThanOrEqual(512 + 17);
    expect(of('tls-front')).toEqual([]);
  });
});

describe('aws-iot maxFragmentLength without the front', () => {
  it('names the missing binary and how to build it', async () => {
    const saved = process.env.FIELDLAB_TLS_FRONT;
    process.env.FIELDLAB_TLS_FRONT = '/nonexistent/fieldlab-tls-front';
    const pki = await startPki({ name: 'pki' });
    try {
      const server = await pki.issueServer(['localhost']);
      const err = await start({
        name: 'aws',
        tls: { certPem: server.chainPem, keyPem: server.keyPem },
        maxFragmentLength: 'ignore',
      }).then(
        (h) => h.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(isFieldlabError(err) && err.code).toBe('E_TLS_FRONT_MISSING');
      expect(isFieldlabError(err) && err.hint).toMatch(/build-tls-front\.sh/);
    } finally {
      if (saved === undefined) delete process.env.FIELDLAB_TLS_FRONT;
      else process.env.FIELDLAB_TLS_FRONT = saved;
      await pki.stop();
    }
  });
});

describe('a variant with maxFragmentLength: ignore', () => {
  it('needs the tls-front capability, other variants of the scenario do not', () => {
    const s = loadYamlScenario('scenarios/device-advisor-tls.yaml');
    const variant = (name: string) => s.variants.find((v) => v.name === name)!;
    for (const backend of [loopback, container]) {
      expect(backend.capabilities(s, variant('fixed-max-fragment-openssl'))).toContain('tls-front');
      expect(backend.capabilities(s, variant('fixed-max-fragment-honoured-openssl'))).not.toContain(
        'tls-front',
      );
      expect(backend.capabilities(s, variant('fixed-mosquitto'))).not.toContain('tls-front');
    }
  });
});
