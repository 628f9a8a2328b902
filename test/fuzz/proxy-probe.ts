import { get as httpsGet } from 'node:https';
import { HttpsProxyAgent } from 'https-proxy-agent';

/**
 * The proxy fuzzers' probe (connect-proxy, tls-inspector): an HTTPS GET of `url` tunnelled through the
 * proxy at `proxyUrl` by https-proxy-agent, as a user's Node client sends it; resolves with the body.
 */
export function getThroughProxy(
  proxyUrl: string,
  url: string,
  tls: { ca: string; servername?: string },
): Promise<string> {
  const agent = new HttpsProxyAgent(proxyUrl);
  return new Promise<string>((resolve, reject) => {
    const req = httpsGet(url, { agent, ...tls, timeout: 5000 }, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => {
        body += c;
      });
      res.on('end', () => resolve(body));
    });
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  }).finally(() => agent.destroy());
}
