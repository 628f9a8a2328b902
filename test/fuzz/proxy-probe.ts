import { HttpsProxyAgent } from 'https-proxy-agent';
import { httpsText } from '../connect-proxy/helpers.js';

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
  return httpsText(url, { agent, ...tls }).finally(() => agent.destroy());
}
