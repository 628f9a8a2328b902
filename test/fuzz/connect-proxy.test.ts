import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type ConnectProxyHandle, start } from '../../simulators/connect-proxy/index.js';
import {
  makeCert,
  startHttpsTarget,
  startHttpTarget,
  type Target,
  type TestCert,
} from '../connect-proxy/helpers.js';
import { within } from '../helpers/within.js';
import { fuzz } from './harness.js';
import { proxyRequest } from './http-requests.js';
import { loopbackOnlyLookup, sendTcp } from './mutate.js';
import { getThroughProxy } from './proxy-probe.js';

let cert: TestCert;
let tls: Target;
let plain: Target;
let proxy: ConnectProxyHandle;
let proxyPort: number;
beforeAll(async () => {
  cert = makeCert();
  tls = await startHttpsTarget(cert);
  plain = await startHttpTarget();
  proxy = await start({
    name: 'fuzz-proxy',
    allowPorts: [tls.port, plain.port, 443],
    destinations: ['127.0.0.0/8', 'localhost'],
    lookup: loopbackOnlyLookup,
    connectTimeoutMs: 1000,
  });
  proxyPort = endpointOf(proxy).port;
});
afterAll(async () => {
  await proxy?.stop();
  await tls?.stop();
  await plain?.stop();
  cert?.cleanup();
});

/** https-proxy-agent tunnels an HTTPS GET through the proxy to the lab target. */
const getFromLabTarget = (): Promise<string> =>
  getThroughProxy(`http://127.0.0.1:${proxyPort}`, `https://127.0.0.1:${tls.port}/still`, {
    ca: cert.certPem,
    servername: 'lab.example',
  });

describe('fuzz: CONNECT and HTTP requests → connect-proxy', () => {
  it('keeps tunnelling and returns to its heap baseline after mutated requests', async () => {
    const r = await fuzz({
      name: 'CONNECT/HTTP → connect-proxy',
      input: proxyRequest,
      send: async (req) => {
        const text = req
          .toString('latin1')
          .replaceAll('$PORT', String(tls.port))
          .replaceAll('$HTTP', String(plain.port));
        await sendTcp(proxyPort, [Buffer.from(text, 'latin1')], 150);
      },
      probe: async () => {
        expect(await within(getFromLabTarget(), 6000, 'a GET through the proxy')).toContain(
          'tls target says /still',
        );
      },
      batchSize: 200,
      batches: 8,
      concurrency: 32,
    });
    expect(r.heaps).toHaveLength(r.batches);
  }, 60_000);
});
