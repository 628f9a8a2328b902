import { request } from 'node:https';

/**
 * Krypton's side of the Azure IoT Hub Device Provisioning Service: a real DPS registration over HTTPS with
 * X.509 attestation (Microsoft Learn, "DPS device REST API": `PUT /{idScope}/registrations/{regId}/register`,
 * then `GET .../operations/{operationId}` until `assigned`). The device certificate is the TLS client
 * certificate; no `authorization` header ("Use X.509 certificates over HTTPS without an SDK").
 */

export const DPS_API_VERSION = '2019-03-31';

/** Where the DPS is and how to trust it. */
export interface DpsTarget {
  /** Address and port of the DPS HTTPS endpoint. */
  host: string;
  port: number;
  /** The DPS's host name (TLS server name). */
  hostName: string;
  idScope: string;
  /** PEM the DPS's server certificate chains to. */
  caPem: string;
}

export interface DpsAssignment {
  registrationId: string;
  deviceId: string;
  assignedHub: string;
  substatus?: string;
}

interface DpsAnswer {
  status: number;
  retryAfterS: number;
  body: Record<string, unknown>;
}

/** At most this many status queries, and never a wait longer than this between them. */
const MAX_POLLS = 20;
const MAX_RETRY_AFTER_S = 5;

function call(
  target: DpsTarget,
  method: 'PUT' | 'GET',
  path: string,
  cert: { certPem: string; keyPem: string },
  body: unknown,
  signal: AbortSignal,
): Promise<DpsAnswer> {
  return new Promise((resolve, reject) => {
    const payload = body === undefined ? '' : JSON.stringify(body);
    const req = request(
      {
        host: target.host,
        port: target.port,
        servername: target.hostName,
        method,
        path: `${path}?api-version=${DPS_API_VERSION}`,
        headers: {
          host: target.hostName,
          accept: 'application/json',
          ...(payload ? { 'content-type': 'application/json; charset=utf-8' } : {}),
          'content-length': Buffer.byteLength(payload),
        },
        ca: target.caPem,
        cert: cert.certPem,
        key: cert.keyPem,
        signal,
        timeout: 10_000,
      },
      (res) => {
        let data = '';
        res.setEncoding('utf8').on('data', (d: string) => (data += d));
        res.on('end', () => {
          let parsed: Record<string, unknown> = {};
          try {
            parsed = data ? (JSON.parse(data) as Record<string, unknown>) : {};
          } catch {
            parsed = { message: data.slice(0, 200) };
          }
          const retry = Number(res.headers['retry-after'] ?? 0);
          resolve({
            status: res.statusCode ?? 0,
            retryAfterS: Number.isFinite(retry) && retry > 0 ? Math.min(retry, MAX_RETRY_AFTER_S) : 0,
            body: parsed,
          });
        });
        res.on('error', reject);
      },
    );
    req.on('timeout', () => req.destroy(new Error(`DPS ${target.hostName}: no answer in 10 s`)));
    req.on('error', reject);
    req.end(payload);
  });
}

function wait(seconds: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve, reject) => {
    if (signal.aborted) return reject(signal.reason);
    const t = setTimeout(done, seconds * 1000);
    function done() {
      signal.removeEventListener('abort', abort);
      resolve();
    }
    function abort() {
      clearTimeout(t);
      reject(signal.reason);
    }
    signal.addEventListener('abort', abort, { once: true });
  });
}

function failure(step: string, a: DpsAnswer): Error {
  const why = a.body.message ?? a.body.errorMessage ?? a.body.status ?? '';
  const code = a.body.errorCode === undefined ? '' : ` ${String(a.body.errorCode)}`;
  return new Error(`DPS ${step}: HTTP ${a.status}${code}${why ? ` ${String(why)}` : ''}`);
}

/**
 * Registers `registrationId` (the certificate's CN) at the DPS with the certificate, following the
 * service's `retry-after` between status queries; resolves with the assignment, rejects with what DPS said.
 */
export async function registerX509(
  target: DpsTarget,
  registrationId: string,
  cert: { certPem: string; keyPem: string },
  signal: AbortSignal,
): Promise<DpsAssignment> {
  const base = `/${encodeURIComponent(target.idScope)}/registrations/${encodeURIComponent(registrationId)}`;
  let answer = await call(target, 'PUT', `${base}/register`, cert, { registrationId }, signal);
  if (answer.status !== 200 && answer.status !== 202) throw failure('register', answer);
  for (let polls = 0; ; polls++) {
    const state = answer.body.registrationState as Record<string, unknown> | undefined;
    const status = String(answer.body.status ?? state?.status ?? '');
    if (status === 'assigned' && state) {
      return {
        registrationId,
        deviceId: String(state.deviceId),
        assignedHub: String(state.assignedHub),
        ...(typeof state.substatus === 'string' ? { substatus: state.substatus } : {}),
      };
    }
    if (status !== 'assigning' && status !== 'unassigned') throw failure('registration', answer);
    if (polls >= MAX_POLLS) throw new Error(`DPS registration: still ${status} after ${MAX_POLLS} queries`);
    const operationId = String(answer.body.operationId ?? '');
    if (!operationId) throw failure('registration (no operationId)', answer);
    await wait(answer.retryAfterS, signal);
    answer = await call(
      target,
      'GET',
      `${base}/operations/${encodeURIComponent(operationId)}`,
      cert,
      undefined,
      signal,
    );
    if (answer.status !== 200 && answer.status !== 202) throw failure('operation status', answer);
  }
}
