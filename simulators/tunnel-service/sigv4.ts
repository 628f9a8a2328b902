import { timingSafeEqual } from 'node:crypto';
import type { IncomingMessage } from 'node:http';
import { Hash } from '@smithy/hash-node';
import { SignatureV4 } from '@smithy/signature-v4';
import type { Clock } from './clock.js';

/**
 * AWS Signature Version 4 on the management API, checked the way AWS checks it: the Authorization header
 * (`AWS4-HMAC-SHA256 Credential=AKID/yyyymmdd/region/service/aws4_request, SignedHeaders=..., Signature=...`),
 * the credential scope (region, service, date), the access key, the clock skew, then the signature,
 * recomputed with the SDK's own signer (`@smithy/signature-v4`) over the headers the client signed.
 * Each refusal carries the error type, HTTP status and message AWS answers with.
 */

/** The signing name in the service model (`signingName`), used by every SDK in the credential scope. */
export const SIGNING_NAME = 'IoTSecuredTunneling';
/** IAM user guide, "AWS API request signing": a request must reach AWS within five minutes of its time stamp. */
export const MAX_SKEW_MS = 5 * 60 * 1000;

export type AuthFailureReason =
  | 'missing'
  | 'incomplete'
  | 'scope'
  | 'region'
  | 'service'
  | 'unknown-key'
  | 'expired'
  | 'not-yet-valid'
  | 'signature';

export interface AuthFailure {
  reason: AuthFailureReason;
  /** The JSON `__type` and `x-amzn-ErrorType` AWS answers with. */
  errorType: string;
  status: number;
  message: string;
  accessKeyId?: string;
}

export interface SigV4Config {
  region: string;
  credentials: { accessKeyId: string; secretAccessKey: string };
  clock: Clock;
}

const ALGORITHM = 'AWS4-HMAC-SHA256';
const AMZ_DATE = /^(\d{4})(\d{2})(\d{2})T(\d{2})(\d{2})(\d{2})Z$/;

function fail(
  reason: AuthFailureReason,
  errorType: string,
  status: number,
  message: string,
  accessKeyId?: string,
): AuthFailure {
  return { reason, errorType, status, message, ...(accessKeyId !== undefined ? { accessKeyId } : {}) };
}

/** `20240102T030405Z` as AWS writes it. */
function amzDate(ms: number): string {
  return new Date(ms)
    .toISOString()
    .replace(/[-:]/g, '')
    .replace(/\.\d{3}Z$/, 'Z');
}

/** The Authorization header's parameters (`Credential`, `SignedHeaders`, `Signature`). */
function parameters(rest: string): Map<string, string> {
  const out = new Map<string, string>();
  for (const part of rest.split(',')) {
    const eq = part.indexOf('=');
    if (eq > 0) out.set(part.slice(0, eq).trim(), part.slice(eq + 1).trim());
  }
  return out;
}

export class SigV4Verifier {
  constructor(private readonly config: SigV4Config) {}

  /** Undefined when the request is signed right; else why not, as AWS would answer. */
  async verify(req: IncomingMessage, body: Buffer): Promise<AuthFailure | undefined> {
    const header = req.headers.authorization;
    // Common errors: MissingAuthenticationToken (403).
    if (!header)
      return fail('missing', 'MissingAuthenticationTokenException', 403, 'Missing Authentication Token');
    const space = header.indexOf(' ');
    const algorithm = space < 0 ? header : header.slice(0, space);
    if (algorithm !== ALGORITHM) {
      return fail(
        'incomplete',
        'IncompleteSignatureException',
        403,
        `Unsupported AWS 'algorithm': '${algorithm}'. Authorization=${header}`,
      );
    }
    const params = parameters(header.slice(space + 1));
    const missing = ['Credential', 'Signature', 'SignedHeaders'].filter((p) => !params.get(p));
    const amz = req.headers['x-amz-date'];
    const missingText = missing.map((p) => `Authorization header requires '${p}' parameter.`);
    if (typeof amz !== 'string') {
      missingText.push(
        "Authorization header requires existence of either a 'X-Amz-Date' or a 'Date' header.",
      );
    }
    if (missingText.length > 0) {
      return fail(
        'incomplete',
        'IncompleteSignatureException',
        403,
        `${missingText.join(' ')} Authorization=${header}`,
      );
    }
    const credential = (params.get('Credential') as string).split('/');
    const [accessKeyId, scopeDate, region, service, terminator] = credential;
    if (credential.length !== 5 || !accessKeyId || !scopeDate || !region || !service) {
      return fail(
        'scope',
        'IncompleteSignatureException',
        403,
        `Credential must have exactly 5 slash-delimited elements, e.g. keyid/date/region/service/term, got '${params.get('Credential')}'`,
        accessKeyId,
      );
    }
    if (terminator !== 'aws4_request') {
      return fail(
        'scope',
        'InvalidSignatureException',
        403,
        `Credential should be scoped with a valid terminator: 'aws4_request', not '${terminator}'. `,
        accessKeyId,
      );
    }
    const date = AMZ_DATE.exec(amz as string);
    if (!date) {
      return fail(
        'incomplete',
        'IncompleteSignatureException',
        403,
        `Date must be in ISO-8601 'basic format'. Got '${amz}'.`,
        accessKeyId,
      );
    }
    if (scopeDate !== (amz as string).slice(0, 8)) {
      return fail(
        'scope',
        'InvalidSignatureException',
        403,
        `Date in Credential scope does not match YYYYMMDD from ISO-8601 version of date from HTTP: '${scopeDate}' != '${(amz as string).slice(0, 8)}', from '${amz}'.`,
        accessKeyId,
      );
    }
    if (region !== this.config.region) {
      return fail(
        'region',
        'InvalidSignatureException',
        403,
        `Credential should be scoped to a valid region, not '${region}'. `,
        accessKeyId,
      );
    }
    if (service.toLowerCase() !== SIGNING_NAME.toLowerCase()) {
      return fail(
        'service',
        'InvalidSignatureException',
        403,
        `Credential should be scoped to correct service: '${SIGNING_NAME}'. `,
        accessKeyId,
      );
    }
    const lab = this.config.credentials;
    if (accessKeyId !== lab.accessKeyId) {
      // Common errors: UnrecognizedClientException (403).
      return fail(
        'unknown-key',
        'UnrecognizedClientException',
        403,
        'The security token included in the request is invalid.',
        accessKeyId,
      );
    }
    const signedAt = Date.UTC(
      Number(date[1]),
      Number(date[2]) - 1,
      Number(date[3]),
      Number(date[4]),
      Number(date[5]),
      Number(date[6]),
    );
    // AWS JSON services answer a stale or early signature with 400 and these messages.
    const now = this.config.clock.now();
    if (signedAt < now - MAX_SKEW_MS) {
      return fail(
        'expired',
        'InvalidSignatureException',
        400,
        `Signature expired: ${amz} is now earlier than ${amzDate(now - MAX_SKEW_MS)} (${amzDate(now)} - 5 min.)`,
        accessKeyId,
      );
    }
    if (signedAt > now + MAX_SKEW_MS) {
      return fail(
        'not-yet-valid',
        'InvalidSignatureException',
        400,
        `Signature not yet current: ${amz} is still later than ${amzDate(now + MAX_SKEW_MS)} (${amzDate(now)} + 5 min.)`,
        accessKeyId,
      );
    }
    const signedHeaders = (params.get('SignedHeaders') as string).split(';').map((h) => h.toLowerCase());
    if (!signedHeaders.includes('host')) {
      return fail(
        'signature',
        'InvalidSignatureException',
        403,
        "'Host' or ':authority' must be a 'SignedHeader' in the AWS Authorization.",
        accessKeyId,
      );
    }
    const expected = await this.signature(req, body, signedHeaders, signedAt, region, service);
    const given = Buffer.from(params.get('Signature') as string);
    if (given.length !== expected.length || !timingSafeEqual(given, expected)) {
      return fail(
        'signature',
        'InvalidSignatureException',
        403,
        'The request signature we calculated does not match the signature you provided. Check your AWS Secret Access Key and signing method. Consult the service documentation for details.',
        accessKeyId,
      );
    }
    return undefined;
  }

  /** The signature the lab secret gives over the request's signed headers, path, query and body. */
  private async signature(
    req: IncomingMessage,
    body: Buffer,
    signedHeaders: string[],
    signedAt: number,
    region: string,
    service: string,
  ): Promise<Buffer> {
    const signer = new SignatureV4({
      service,
      region,
      credentials: this.config.credentials,
      sha256: Hash.bind(null, 'sha256'),
      uriEscapePath: true,
      // The payload hash goes in the canonical request either way; only add the header if it was sent.
      applyChecksum: false,
    });
    const url = new URL(req.url ?? '/', 'http://api.invalid');
    // Null-prototype records: names come from the request (a `__proto__` header must stay a header).
    const query: Record<string, string | string[]> = Object.create(null);
    for (const [k, v] of url.searchParams) {
      const prev = query[k];
      query[k] = prev === undefined ? v : [...(Array.isArray(prev) ? prev : [prev]), v];
    }
    // SigV4: a header sent several times is signed as its values joined by commas.
    const headers: Record<string, string> = Object.create(null);
    for (const name of signedHeaders) {
      const values = Object.hasOwn(req.headersDistinct, name) ? req.headersDistinct[name] : undefined;
      if (values) headers[name] = values.join(',');
    }
    const signed = await signer.sign(
      {
        method: req.method ?? 'POST',
        protocol: 'http:',
        hostname: headers.host ?? '',
        path: url.pathname,
        query,
        headers,
        body,
      },
      { signingDate: new Date(signedAt), signableHeaders: new Set(signedHeaders) },
    );
    const auth = String(signed.headers.authorization ?? '');
    return Buffer.from(/Signature=([0-9a-f]+)/.exec(auth)?.[1] ?? '');
  }
}
