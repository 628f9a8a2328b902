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
    ['Error: certificate has expired', 'tls.expired'],
    [
      "Error [ERR_TLS_CERT_ALTNAME_INVALID]: Hostname/IP does not match certificate's altnames",
      'tls.hostname-mismatch',
    ],
    ['Error: getaddrinfo ENOTFOUND hub.iot.example.com', 'dns.nxdomain'],
    ['Error: read ECONNRESET', 'tcp.reset'],
    ['TimeoutError: operation timed out after 10000 ms', 'tcp.timeout'],
    // aws-iot-device-sdk-v2's CRT log (s2n) names the cause; the SDK's own error comes after the blinding delay.
    [
      '[WARN] [tls-handler] - id=0x7f: negotiation failed with error Certificate is not valid for the supplied hostname (Error encountered in s2n_x509_validator.c:243)\naws-iot-publish: Error: connect: ETIMEDOUT after 5000 ms',
      'tls.hostname-mismatch',
    ],
    [
      '[WARN] [tls-handler] - id=0x7f: negotiation failed with error Certificate is untrusted (Error encountered in s2n_x509_validator.c:894)',
      'tls.untrusted-root',
    ],
    [
      '[WARN] [tls-handler] - id=0x7f: negotiation failed with error Certificate has expired (Error encountered in s2n_x509_validator.c:879)',
      'tls.expired',
    ],
    ['Unable to connect (A TLS error occurred.).', 'tls.handshake'],
    ['Error: A TLS error occurred.', 'tls.handshake'],
  ])('%s → %s', (text, cls) => {
    expect(classifyText(text)).toBe(cls);
  });

  it("does not take a tunnel verdict from our own localproxy's words", () => {
    // tunnel.token-used / tunnel.closed come from the tunnel service's token-rejected event (evidence.ts).
    expect(
      classifyText('localproxy: E_TUNNEL_TOKEN_USED: the service refused the access token (403)'),
    ).toBeUndefined();
  });

  it('names nothing for output it does not know', () => {
    expect(
      classifyText('azure-device: error NotConnectedError via Amqp: rhea: connection disconnected'),
    ).toBeUndefined();
  });
});
