/**
 * TLS alert descriptions (RFC 8446 §6, RFC 5246 §7.2) by number. A server learns why a client rejected
 * its certificate only from the alert the client sent; OpenSSL reports it to Node as
 * `... SSL alert number 48` / `tlsv1 alert unknown ca`.
 */
export const TLS_ALERTS: Record<number, string> = {
  0: 'close_notify',
  10: 'unexpected_message',
  20: 'bad_record_mac',
  22: 'record_overflow',
  40: 'handshake_failure',
  42: 'bad_certificate',
  43: 'unsupported_certificate',
  44: 'certificate_revoked',
  45: 'certificate_expired',
  46: 'certificate_unknown',
  47: 'illegal_parameter',
  48: 'unknown_ca',
  49: 'access_denied',
  50: 'decode_error',
  51: 'decrypt_error',
  70: 'protocol_version',
  71: 'insufficient_security',
  80: 'internal_error',
  86: 'inappropriate_fallback',
  90: 'user_canceled',
  109: 'missing_extension',
  110: 'unsupported_extension',
  112: 'unrecognized_name',
  113: 'bad_certificate_status_response',
  115: 'unknown_psk_identity',
  116: 'certificate_required',
  120: 'no_application_protocol',
};

/** The alert a peer sent, from an OpenSSL error as Node reports it; undefined when none is named. */
export function alertFromError(err: unknown): string | undefined {
  const msg = err instanceof Error ? err.message : String(err);
  const num = /alert number (\d+)/i.exec(msg);
  if (num) return TLS_ALERTS[Number(num[1])];
  const named = /alert ([a-z ]+?)(?:[:)]|$)/i.exec(msg);
  if (named?.[1]) return named[1].trim().replace(/ /g, '_');
  return undefined;
}
