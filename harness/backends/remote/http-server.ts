import { createHash, timingSafeEqual } from 'node:crypto';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { FieldlabError } from '../../../simulators/common/errors.js';
import { listen } from '../../../simulators/common/net.js';
import { answerControl, errorReply, type RelayDirectory } from './dispatch.js';
import { CONTROL_PATH, type ControlReply, MAX_CONTROL_REQUEST } from './protocol.js';

/** The first control API's path (add a toxic), answered as an `add` request. */
const LEGACY_TOXICS_PATH = '/toxics';

/** Whether an Authorization header carries the bearer token, compared in constant time. */
function authorized(header: string | undefined, token: string): boolean {
  // RFC 6750 §2.1: `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  if (!m?.[1]) return false;
  // Digests: equal lengths for timingSafeEqual, and the token's length does not leak either.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

/** The HTTP status of a refused request: the client's mistake (4xx) by the error's code. */
function statusOf(reply: ControlReply): number {
  if (reply.ok) return 200;
  switch (reply.error.code) {
    case 'E_NO_RELAY':
    case 'E_NO_SUCH_SIMULATOR':
    case 'E_NO_SUCH_TOXIC':
    case 'E_NO_SUCH_FAULT':
      return 404;
    case 'E_TOXIC_EXISTS':
    case 'E_FAULT_EXISTS':
      return 409; // RFC 9110 §15.5.10
    case 'E_INTERNAL':
      return 500;
    default:
      return 400;
  }
}

/**
 * A worker's HTTP control API: `POST /control` with one control request (protocol.ts) as its JSON body,
 * answered with its reply (200 when done, 4xx naming what is wrong). Every request must carry the lab's
 * secret (`Authorization: Bearer <token>`), checked before anything else is read: without it, 401 and
 * nothing happens.
 */
export async function startControlApi(
  lab: RelayDirectory,
  opts: { token: string; host: string; port: number },
): Promise<Server> {
  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    const refuse = (status: number, code: string, message: string, headers: Record<string, string> = {}) => {
      req.resume();
      answer(status, errorReply(null, new FieldlabError(code, message)), headers);
    };
    if (!authorized(req.headers.authorization, opts.token)) {
      // RFC 6750 §3: 401 with a Bearer challenge; `invalid_token` when one was given (§3.1).
      const given = req.headers.authorization !== undefined;
      return refuse(401, 'E_CONTROL_AUTH', 'the control API needs the lab’s secret (Authorization: Bearer)', {
        'www-authenticate': `Bearer realm="fieldlab-control"${given ? ', error="invalid_token"' : ''}`,
      });
    }
    // The first control API took only `POST /toxics {target, toxic}` (add): kept as that request.
    const legacy = req.url === LEGACY_TOXICS_PATH;
    if (req.url !== CONTROL_PATH && !legacy) {
      return refuse(404, 'E_BAD_CONTROL', `no ${req.url ?? ''}: the control API is POST ${CONTROL_PATH}`);
    }
    if (req.method !== 'POST') {
      // RFC 9110 §15.5.6: 405 lists the allowed methods.
      return refuse(405, 'E_BAD_CONTROL', `${req.method ?? ''} ${CONTROL_PATH}: only POST`, {
        allow: 'POST',
      });
    }
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      body += d;
      if (body.length > MAX_CONTROL_REQUEST && !res.headersSent) {
        // RFC 9110 §15.5.14
        answer(
          413,
          errorReply(
            null,
            new FieldlabError('E_BAD_CONTROL', `a control request is at most ${MAX_CONTROL_REQUEST} bytes`),
          ),
          { connection: 'close' },
        );
        req.destroy();
      }
    });
    req.on('end', () => {
      if (res.headersSent) return;
      let parsed: unknown;
      try {
        parsed = JSON.parse(body);
      } catch (err) {
        answer(
          400,
          errorReply(
            null,
            new FieldlabError('E_BAD_CONTROL', `the request is not JSON: ${(err as Error).message}`),
          ),
        );
        return;
      }
      const reply = answerControl(lab, legacy ? { ...(parsed as object), op: 'add' } : parsed);
      answer(statusOf(reply), reply);
    });
  });
  control.on('clientError', (_err, socket) => socket.destroy());
  await listen(control, opts.host, opts.port);
  return control;
}
