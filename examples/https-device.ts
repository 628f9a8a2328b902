/**
 * An example device that talks HTTPS to its cloud (a REST endpoint), the kind `fieldlab init --cloud https`
 * writes a scenario for: one GET, through the proxy when `https_proxy` is set. Exits 0 on a 2xx answer;
 * otherwise prints the error (Node's code: ECONNREFUSED, UNABLE_TO_GET_ISSUER_CERT_LOCALLY...) and exits 1.
 *
 *   API_URL        the endpoint, e.g. https://api.iot.example.com/
 *   API_CA         PEM file of the root(s) the device trusts (default: Node's own bundle)
 *   https_proxy    http://[user:pass@]proxy:port (optional; credentials percent-encoded)
 *   API_TIMEOUT_MS give up after this long (default 10000)
 */
import { readFileSync } from 'node:fs';
import { request } from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';

const env = process.env;

function fail(message: string): never {
  process.stderr.write(`https-device: ${message}\n`);
  process.exit(1);
}

const url = env.API_URL || fail('API_URL is not set');
const ca = env.API_CA ? readFileSync(env.API_CA, 'utf8') : undefined;
const proxy = env.https_proxy || env.HTTPS_PROXY;
const timeoutMs = Number(env.API_TIMEOUT_MS ?? 10_000);

const req = request(
  url,
  {
    ...(ca ? { ca } : {}),
    ...(proxy ? { agent: new HttpsProxyAgent(proxy, ca ? { ca } : {}) } : {}),
    timeout: timeoutMs,
  },
  (res) => {
    res.resume();
    res.once('end', () => {
      const status = res.statusCode ?? 0;
      if (status >= 200 && status < 300) {
        process.stdout.write(`https-device: ${url} answered ${status}\n`);
        process.exit(0);
      }
      fail(`${url} answered ${status} ${res.statusMessage ?? ''}`);
    });
  },
);
req.once('timeout', () => req.destroy(Object.assign(new Error(`ETIMEDOUT after ${timeoutMs} ms`))));
req.once('error', (err: NodeJS.ErrnoException) => fail(`${err.code ?? 'error'}: ${err.message}`));
req.end();
