import type { IncomingMessage, ServerResponse } from 'node:http';
import type { TLSSocket } from 'node:tls';
import type { HubCore } from './core.js';
import { readBody, sendJson } from './front.js';

/**
 * The IoT Hub device REST API (the `Http` transport):
 *   POST   /devices/<id>/messages/events?api-version=...              D2C → 204
 *   GET    /devices/<id>/messages/deviceBound?api-version=...         C2D → 200 + etag lock token | 204
 *   DELETE /devices/<id>/messages/deviceBound/<lock>[?...&reject]      complete / reject → 204
 *   POST   /devices/<id>/messages/deviceBound/<lock>/abandon           abandon → 204
 *   POST   /devices/<d>/modules/<m>/messages/events?api-version=...   D2C from a module → 204
 * Every request carries `authorization: SharedAccessSignature ...` for that device (or module), or comes on a
 * TLS connection with the certificate of an X.509 identity (else 401).
 */
const ROUTE = /^\/devices\/([^/]+)\/messages\/(events|deviceBound|devicebound)(?:\/([^/]+))?(\/abandon)?\/?$/;
/** Modules send telemetry over HTTPS (the C# SDK's module event path); C2D is for devices only. */
const MODULE_EVENTS = /^\/devices\/([^/]+)\/modules\/([^/]+)\/messages\/events\/?$/;

function hubError(res: ServerResponse, status: number, code: string, message: string): void {
  // The hub's error body: {"Message":"ErrorCode:<code>;<message>","ExceptionMessage":...}.
  sendJson(res, status, { Message: `ErrorCode:${code};${message}`, ExceptionMessage: '' });
}

export function hubHttpHandler(core: HubCore) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    handle(core, req, res).catch(() => {
      if (!res.headersSent) hubError(res, 500, 'ServerError', 'internal error');
      else res.destroy();
    });
  };
}

async function handle(core: HubCore, req: IncomingMessage, res: ServerResponse): Promise<void> {
  const url = new URL(req.url ?? '/', 'https://hub');
  const mod = MODULE_EVENTS.exec(url.pathname);
  const m = ROUTE.exec(url.pathname);
  if (!m && !mod) {
    hubError(res, 404, 'IotHubNotFound', `no route for ${req.method} ${url.pathname}`);
    return;
  }
  const deviceId = mod
    ? `${decodeURIComponent(mod[1]!)}/${decodeURIComponent(mod[2]!)}`
    : decodeURIComponent(m![1]!);
  const auth = req.headers.authorization;
  // X.509 identities send no authorization header: their TLS client certificate proves them.
  const peer =
    'getPeerCertificate' in req.socket ? (req.socket as TLSSocket).getPeerCertificate(true) : undefined;
  if (!core.authenticate(deviceId, { token: auth, peer }, 'https')) {
    hubError(res, 401, 'IotHubUnauthorizedAccess', 'Unauthorized');
    return;
  }
  if (mod || (m?.[2] === 'events' && !m[3])) {
    if (req.method !== 'POST') {
      hubError(res, 405, 'MethodNotAllowed', `${req.method} not allowed on ${url.pathname}`);
      return;
    }
    const body = await readBody(req);
    const props: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers)) {
      if (k.startsWith('iothub-app-') && typeof v === 'string') props[k.slice('iothub-app-'.length)] = v;
      else if (k === 'iothub-messageid' && typeof v === 'string') props['$.message_id'] = v;
    }
    core.telemetry(deviceId, 'https', body, props);
    res.writeHead(204).end();
    return;
  }
  if (!m) return;
  const kind = m[2] === 'events' ? 'events' : 'deviceBound';
  if (kind === 'deviceBound' && req.method === 'GET' && !m[3]) {
    const next = core.c2d.take(deviceId);
    if (!next) {
      res.writeHead(204).end();
      return;
    }
    const headers: Record<string, string> = {
      etag: `"${next.lockToken}"`,
      'iothub-messageid': next.msg.messageId,
      'iothub-to': `/devices/${deviceId}/messages/deviceBound`,
      'iothub-deliverycount': String(next.msg.attempts - 1),
      'content-type': 'application/octet-stream',
    };
    for (const [k, v] of Object.entries(next.msg.properties)) headers[`iothub-app-${k}`] = v;
    res.writeHead(200, headers).end(next.msg.body);
    return;
  }
  if (kind === 'deviceBound' && m[3]) {
    const lock = decodeURIComponent(m[3]);
    const outcome =
      req.method === 'POST' && m[4]
        ? 'abandon'
        : req.method === 'DELETE'
          ? url.searchParams.has('reject')
            ? 'reject'
            : 'complete'
          : undefined;
    if (!outcome) {
      hubError(res, 405, 'MethodNotAllowed', `${req.method} not allowed here`);
      return;
    }
    const settled = core.c2d.settle(deviceId, lock, outcome);
    if (!settled) {
      hubError(res, 412, 'DeviceMessageLockLost', 'lock token not found');
      return;
    }
    core.settled(deviceId, 'https', settled.messageId, outcome);
    res.writeHead(204).end();
    return;
  }
  hubError(res, 405, 'MethodNotAllowed', `${req.method} not allowed on ${url.pathname}`);
}
