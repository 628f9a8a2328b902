import { describe, expect, it } from 'vitest';
import { classifyText } from '../../harness/probe/text.js';

describe('classifyText', () => {
  it.each([
    [
      'azure-device: error UnauthorizedError via Mqtt: Failure on first connection (Not authorized): connect ECONNREFUSED 127.1.2.3:8883',
      'tcp.refused',
    ],
    ['azure-device: error UnauthorizedError via Mqtt after 120 ms: Not authorized', 'auth.rejected'],
    [
      'mqtt.js returned Failure on first connection (Not authorized): Connection refused: Not authorized error',
      'auth.rejected',
    ],
    ['curl: (7) Failed to connect to hub port 5671 after 2 ms: Connection refused', 'tcp.refused'],
    ['Error: unable to get local issuer certificate', 'tls.untrusted-root'],
    ['localproxy: E_TUNNEL_TOKEN_USED: the service refused the access token (403)', 'tunnel.token-used'],
    ['Error: certificate has expired', 'tls.expired'],
    [
      "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames",
      'tls.hostname-mismatch',
    ],
    ['Error: getaddrinfo ENOTFOUND hub.iot.example.com', 'dns.nxdomain'],
    ['Error: read ECONNRESET', 'tcp.reset'],
    ['TimeoutError: operation timed out after 10000 ms', 'tcp.timeout'],
  ])('%s → %s', (text, cls) => {
    expect(classifyText(text)).toBe(cls);
  });

  it('names nothing for output it does not know', () => {
    expect(
      classifyText('azure-device: error NotConnectedError via Amqp: rhea: connection disconnected'),
    ).toBeUndefined();
  });
});
