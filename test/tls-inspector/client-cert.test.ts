import { EventEmitter, once } from 'node:events';
import type { AddressInfo, Socket } from 'node:net';
import { createServer, type Server, type TLSSocket } from 'node:tls';
import { afterEach, describe, expect, it } from 'vitest';
import { explain } from '../../harness/probe/evidence.js';
import { classifyText } from '../../harness/probe/text.js';
import type { IssuedCert } from '../../simulators/pki/index.js';
import { start, type TlsInspectorHandle } from '../../simulators/tls-inspector/index.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { inspectorCa, labCa, nextEvent, run, tempFiles, tlsThrough } from './helpers.js';

/**
 * Mutual TLS through the inspector: it terminates the device's TLS and opens its own to the target, so a
 * target's CertificateRequest reaches a party with no device key. The inspector must say so.
 */

type Mode =
  /** `rejectUnauthorized`: OpenSSL refuses a session without a certificate (an alert). */
  | 'required'
  /** Asks, accepts none at the TLS level, answers each line with `hello` (IoT Hub: SAS or X.509). */
  | 'optional-answers'
  /** Asks, accepts none at the TLS level, then drops a session without one at its first bytes (AWS IoT). */
  | 'optional-drops';

interface MtlsTarget {
  port: number;
  /** Subjects of the client certificates the target received, per session (`''`: none). */
  peers: string[];
  /** Emits `peer` with each session's subject. */
  seen: EventEmitter;
  stop(): Promise<void>;
}

let inspector: TlsInspectorHandle | undefined;
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  await inspector?.stop();
  inspector = undefined;
  for (const c of cleanups.splice(0)) await c();
});

async function startTarget(mode: Mode, maxVersion: 'TLSv1.2' | 'TLSv1.3' = 'TLSv1.3'): Promise<MtlsTarget> {
  const { root, intermediate } = await labCa();
  const leaf = await intermediate.issueLeaf({ names: ['iot.lab.example'] });
  const peers: string[] = [];
  const seen = new EventEmitter();
  const sockets = new Set<Socket>();
  const server: Server = createServer(
    {
      cert: leaf.chainPem,
      key: leaf.keyPem,
      ca: [root.certPem],
      requestCert: true,
      rejectUnauthorized: mode === 'required',
      maxVersion,
    },
    (s: TLSSocket) => {
      s.on('error', () => undefined);
      const cert = s.getPeerCertificate();
      peers.push(String(cert?.subject?.CN ?? ''));
      seen.emit('peer');
      s.once('data', () => {
        if (mode === 'optional-drops' && !s.authorized) s.destroy();
        else s.write('hello\n');
      });
    },
  );
  server.on('connection', (s: Socket) => {
    sockets.add(s);
    s.once('close', () => sockets.delete(s));
  });
  server.on('tlsClientError', () => undefined);
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const target: MtlsTarget = {
    port: (server.address() as AddressInfo).port,
    peers,
    seen,
    stop: async () => {
      for (const s of sockets) s.destroy();
      await new Promise<void>((resolve) => server.close(() => resolve()));
    },
  };
  cleanups.push(target.stop);
  return target;
}

async function startInspector(target: MtlsTarget, passthrough: string[] = []): Promise<TlsInspectorHandle> {
  const lab = await labCa();
  inspector = await start({
    ca: await inspectorCa(),
    upstreamCa: [lab.root.certPem],
    map: { 'iot.lab.example:8883': `127.0.0.1:${target.port}` },
    passthrough,
  });
  return inspector;
}

async function deviceCert(): Promise<IssuedCert> {
  const { intermediate } = await labCa();
  return intermediate.issueLeaf({ commonName: 'sensor-1', usage: 'client' });
}

/** A device with its certificate: TLS through the inspector, one line, then what came back (or the error). */
async function device(h: TlsInspectorHandle, cert: IssuedCert): Promise<{ reply?: string; error?: string }> {
  const lab = await labCa();
  try {
    const s = await tlsThrough(h.endpoints[0]!.port, 'iot.lab.example:8883', {
      ca: [lab.root.certPem, h.rootPem],
      cert: cert.chainPem,
      key: cert.keyPem,
    });
    const reply = await within(
      new Promise<string>((resolve, reject) => {
        let out = '';
        s.setEncoding('utf8');
        s.on('data', (d: string) => {
          out += d;
          if (out.endsWith('\n')) resolve(out);
        });
        s.once('close', () => (out ? resolve(out) : reject(new Error('closed without a reply'))));
        s.once('error', reject);
        s.write('CONNECT sensor-1\n');
      }),
      5000,
      'the target to answer or close',
    );
    s.destroy();
    return { reply };
  } catch (err) {
    return {
      error: err instanceof Error ? `${(err as { code?: string }).code ?? ''} ${err.message}` : String(err),
    };
  }
}

describe('tls-inspector and a target that asks for a client certificate', () => {
  it.each([
    ['TLSv1.3', 'certificate_required'],
    ['TLSv1.2', 'handshake_failure'],
  ] as const)(
    'a target that requires one (%s): the device fails, the inspector names the cause (alert %s)',
    async (version, alert) => {
      const target = await startTarget('required', version);
      const h = await startInspector(target);
      const saw = nextEvent(h.events, 'client-cert-unavailable');
      const r = await device(h, await deviceCert());
      expect(r.reply).toBeUndefined();
      const e = await saw;
      expect(e).toMatchObject({ target: 'iot.lab.example:8883', host: 'iot.lab.example', alert });
      expect(e.message).toMatch(/^client certificate requested upstream, none available/);
      expect(h.stats().clientCertUnavailable).toBe(1);
      expect(target.peers).toEqual([]);
    },
  );

  it('a target that asks, then drops a session without one at its first bytes (as AWS IoT does)', async () => {
    const target = await startTarget('optional-drops');
    const h = await startInspector(target);
    const saw = nextEvent(h.events, 'client-cert-unavailable');
    const r = await device(h, await deviceCert());
    expect(r.reply).toBeUndefined();
    const e = await saw;
    expect(e.alert).toBeUndefined();
    expect(e.message).toMatch(
      /none available: iot\.lab\.example:8883 closed the session without sending any data/,
    );
    // The inspector's session reached the target without the device's certificate.
    expect(target.peers).toEqual(['']);
    // A report: the device saw only a lost connection; the inspector's event names the cause.
    const lost = { ok: false as const, class: 'tcp.reset' as const, detail: 'socket hang up' };
    const { verdict, explanation } = explain(lost, [
      { time: Date.now(), source: 'inspector', type: 'client-cert-unavailable', data: e },
    ]);
    expect(verdict).toMatchObject({ ok: false, class: 'tls.client-cert-required' });
    expect(explanation[0]).toMatch(/^inspector: client certificate requested upstream, none available/);
  });

  it('a target that asks but serves sessions without one (IoT Hub with a SAS key): relayed, no event', async () => {
    const target = await startTarget('optional-answers');
    const h = await startInspector(target);
    const events: unknown[] = [];
    h.events.on('client-cert-unavailable', (d) => events.push(d));
    const closed = nextEvent(h.events, 'closed');
    expect(await device(h, await deviceCert())).toEqual({ reply: 'hello\n' });
    await closed;
    expect(events).toEqual([]);
    expect(h.stats()).toMatchObject({ intercepted: 1, clientCertUnavailable: 0 });
  });

  it('the fix: the endpoint in the passthrough list reaches the target with the device certificate', async () => {
    const target = await startTarget('required');
    const h = await startInspector(target, ['iot.lab.example']);
    expect(await device(h, await deviceCert())).toEqual({ reply: 'hello\n' });
    expect(target.peers).toEqual(['sensor-1']);
    expect(h.stats()).toMatchObject({ passthrough: 1, intercepted: 0, clientCertUnavailable: 0 });
  });
});

describe.skipIf(missing('cmd:openssl'))('openssl s_client -cert -key through the inspector', () => {
  it('fails against a target that requires a client certificate; passes with passthrough', async () => {
    const lab = await labCa();
    const cert = await deviceCert();
    const target = await startTarget('required');
    const h = await startInspector(target);
    const files = tempFiles({
      'bundle.pem': `${lab.root.certPem}\n${h.rootPem}`,
      'device.pem': cert.chainPem,
      'device.key': cert.keyPem,
    });
    cleanups.push(() => files.remove());
    const args = (port: number) => [
      's_client',
      '-proxy',
      `127.0.0.1:${port}`,
      '-connect',
      'iot.lab.example:8883',
      '-servername',
      'iot.lab.example',
      '-CAfile',
      files.path('bundle.pem'),
      '-cert',
      files.path('device.pem'),
      '-key',
      files.path('device.key'),
      // -cert reads only the first certificate of the file; the intermediate goes with -cert_chain.
      '-cert_chain',
      files.path('device.pem'),
      '-verify_return_error',
      '-brief',
    ];
    const saw = nextEvent(h.events, 'client-cert-unavailable');
    const broken = await run('openssl', args(h.endpoints[0]!.port));
    expect(broken.code).not.toBe(0);
    expect(broken.stderr).toMatch(/alert handshake failure|alert number 40/);
    expect((await saw).alert).toBe('certificate_required');
    await h.stop();

    const fixed = await startInspector(target, ['iot.lab.example']);
    const peer = within(once(target.seen, 'peer'), 5000, 'the target to see the session');
    const ok = await run('openssl', args(fixed.endpoints[0]!.port));
    expect(ok.code, ok.stderr).toBe(0);
    await peer;
    expect(target.peers).toEqual(['sensor-1']);
  });
});

describe('what a report makes of a device that leaves the inspector without an alert', () => {
  it('a Node device without the inspector root: the valid forged leaf narrows client.error to tls.untrusted-root', async () => {
    const target = await startTarget('optional-answers');
    const h = await startInspector(target);
    const saw = nextEvent(h.events, 'tls-client-error');
    const lab = await labCa();
    const err = await tlsThrough(h.endpoints[0]!.port, 'iot.lab.example:8883', {
      ca: [lab.root.certPem],
    }).then(
      () => undefined,
      (e: unknown) => e,
    );
    expect((err as { code?: string }).code).toBe('UNABLE_TO_GET_ISSUER_CERT_LOCALLY');
    const e = await saw;
    expect(e).toMatchObject({ code: 'E_CLIENT_HANGUP', fault: 'none', host: 'iot.lab.example' });
    // Node drops the connection without a byte after its ClientHello (s2n closes the session instead).
    if (e.bytesAfterHello !== undefined) expect(e.bytesAfterHello).toBe(0);
    // An SDK that says only "connection disconnected" (azure-iot-device over AmqpWs).
    const vague = {
      ok: false as const,
      class: 'client.error' as const,
      detail: 'rhea: connection disconnected',
    };
    const { verdict } = explain(vague, [
      { time: Date.now(), source: 'inspector', type: 'tls-client-error', data: e },
    ]);
    expect(verdict).toMatchObject({ class: 'tls.untrusted-root' });
  });

  it("s2n's own words for a server that asks for no certificate class as tls.client-cert-required", () => {
    const crtLog =
      '[WARN] [tls-handler] - id=0x1: negotiation failed with error Client requires mutual authentication, ' +
      'but server did not request a cert (Error encountered in s2n_handshake_io.c:1458)';
    expect(classifyText(crtLog)).toBe('tls.client-cert-required');
  });
});
