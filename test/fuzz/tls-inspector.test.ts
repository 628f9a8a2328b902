import { connect as netConnect } from 'node:net';
import type fc from 'fast-check';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { start, type TlsInspectorHandle } from '../../simulators/tls-inspector/index.js';
import { within } from '../helpers/within.js';
import { type HttpsTarget, inspectorCa, labCa, startHttpsTarget } from '../tls-inspector/helpers.js';
import { captureHellos, clientHello } from './client-hello.js';
import { fuzz } from './harness.js';
import { loopbackOnlyLookup } from './mutate.js';
import { getThroughProxy } from './proxy-probe.js';

let target: HttpsTarget;
let inspector: TlsInspectorHandle;
let port: number;
let hellos: fc.Arbitrary<Buffer[]>;
beforeAll(async () => {
  target = await startHttpsTarget();
  const lab = await labCa();
  inspector = await start({
    ca: await inspectorCa(),
    upstreamCa: [lab.root.certPem],
    map: { 'api.lab.example:443': `127.0.0.1:${target.port}` },
    destinations: ['127.0.0.0/8', 'localhost'],
    lookup: loopbackOnlyLookup,
    // Mutated SNIs each forge a leaf: a small cache keeps the bound visible within a short run.
    leafCacheSize: 50,
    handshakeTimeout: 2000,
    upstreamTimeout: 2000,
  });
  port = inspector.endpoints[0]?.port as number;
  hellos = clientHello(await captureHellos());
});
afterAll(async () => {
  await inspector?.stop();
  await target?.stop();
});

/** CONNECT api.lab.example:443, then the (mutated) hello writes; waits for an answer, a close or 150 ms. */
function sendHello(parts: Buffer[]): Promise<void> {
  return new Promise((resolve) => {
    const s = netConnect({ host: '127.0.0.1', port });
    let timer = setTimeout(done, 2000);
    let connected = false;
    function done() {
      clearTimeout(timer);
      s.destroy();
      resolve();
    }
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () =>
      s.write('CONNECT api.lab.example:443 HTTP/1.1\r\nHost: api.lab.example:443\r\n\r\n'),
    );
    s.on('data', (d: Buffer) => {
      if (!connected) {
        if (!d.toString('latin1').startsWith('HTTP/1.1 200')) return done();
        connected = true;
        for (const p of parts) s.write(p);
        clearTimeout(timer);
        timer = setTimeout(done, 150);
        return;
      }
      // The inspector answered the hello (ServerHello or an alert): enough.
      clearTimeout(timer);
      timer = setTimeout(done, 10);
    });
  });
}

/** An HTTPS GET through the inspector (https-proxy-agent), trusting the inspector's root as a user would. */
const getThrough = (): Promise<string> =>
  getThroughProxy(inspector.proxyUrl(), 'https://api.lab.example/still', { ca: inspector.rootPem });

describe('fuzz: TLS ClientHello → tls-inspector', () => {
  it('keeps intercepting and returns to its heap baseline after mutated ClientHellos', async () => {
    const r = await fuzz({
      name: 'TLS ClientHello → tls-inspector',
      input: hellos,
      send: sendHello,
      probe: async () => {
        expect(await within(getThrough(), 8000, 'a GET through the inspector')).toContain('/still');
      },
      batchSize: 100,
      batches: 6,
      concurrency: 16,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);
});
