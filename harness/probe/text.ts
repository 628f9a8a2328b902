import type { FailureClass } from './classes.js';

/**
 * Failure classes from what a program printed, for clients fieldlab has no dedicated parser for (your
 * own program, an SDK example): the messages Node, OpenSSL, libcurl and the SDKs print for the common
 * network failures. Ordered: transport-level causes first, because SDKs wrap them in vaguer errors
 * ("UnauthorizedError ... connect ECONNREFUSED" is a refused port, not a bad key).
 */
const RULES: ReadonlyArray<{ re: RegExp; class: FailureClass }> = [
  // getaddrinfo's "temporary failure" (glibc's answer to SERVFAIL and to a resolver that never answers);
  // curl's own name-resolution timeout (--connect-timeout covers it).
  { re: /\bEAI_AGAIN\b|Temporary failure in name resolution|Resolving timed out/i, class: 'dns.timeout' },
  {
    re: /\b(ENOTFOUND|EAI_NONAME)\b|Could not resolve host|Name or service not known/i,
    class: 'dns.nxdomain',
  },
  // Not MQTT's CONNACK wording "Connection refused: Not authorized", which is about credentials.
  { re: /\bECONNREFUSED\b|Connection refused(?!:)/i, class: 'tcp.refused' },
  { re: /\b(EHOSTUNREACH|ENETUNREACH)\b|No route to host|Network is unreachable/i, class: 'tcp.unreachable' },
  { re: /\bECONNRESET\b|Connection reset by peer|socket hang up/i, class: 'tcp.reset' },
  { re: /\bProxy Authentication Required\b|\b407\b.*proxy|proxy.*\b407\b/i, class: 'proxy.auth-required' },
  // s2n (aws-crt, in the CRT log) set up for mutual TLS refuses a server that asks for no certificate.
  {
    re: /Client requires mutual authentication, but server did not request a cert/,
    class: 'tls.client-cert-required',
  },
  {
    // s2n (aws-crt, aws-iot-device-sdk-v2 on Linux, in the CRT log): "Certificate is untrusted", also for a
    // chain served without its intermediate.
    re: /UNABLE_TO_GET_ISSUER_CERT_LOCALLY|SELF_SIGNED_CERT_IN_CHAIN|unable to get local issuer certificate|self[- ]signed certificate in certificate chain|Certificate is untrusted|tls\.untrusted-root/i,
    class: 'tls.untrusted-root',
  },
  {
    re: /UNABLE_TO_VERIFY_LEAF_SIGNATURE|unable to verify the first certificate/i,
    class: 'tls.incomplete-chain',
  },
  { re: /CERT_HAS_EXPIRED|certificate has expired/i, class: 'tls.expired' },
  { re: /CERT_NOT_YET_VALID|certificate is not yet valid/i, class: 'tls.not-yet-valid' },
  {
    re: /ERR_TLS_CERT_ALTNAME_INVALID|Hostname\/IP does not match|does not match certificate's altnames|Certificate is not valid for the supplied hostname/i,
    class: 'tls.hostname-mismatch',
  },
  // mosquitto clients' one message for any TLS failure (the lab's alert evidence then says which).
  { re: /A TLS error occurred/, class: 'tls.handshake' },
  { re: /\b(ETIMEDOUT|ESOCKETTIMEDOUT)\b|timed out|TimeoutError/i, class: 'tcp.timeout' },
  {
    re: /UnauthorizedError|Not authori[sz]ed|401 Unauthorized|bad username or password/i,
    class: 'auth.rejected',
  },
];

/** The failure class a program's output names, or undefined when it names none we know. */
export function classifyText(text: string): FailureClass | undefined {
  return RULES.find((r) => r.re.test(text))?.class;
}
