import { request as httpRequest } from 'node:http';
import { FieldlabError } from '../../../simulators/common/errors.js';
import {
  CONTROL_PATH,
  CONTROL_PORT,
  type ControlChannel,
  type ControlReply,
  type ControlRequestBody,
  controlReplySchema,
} from './protocol.js';

/** Where a worker's HTTP control API is, and the lab's secret it wants. */
export interface HttpControlTarget {
  host: string;
  /** Default CONTROL_PORT. */
  port?: number;
  token: string;
  /** Bound on each request; default 10 s. */
  timeoutMs?: number;
}

/**
 * Control requests to a worker's HTTP control API (a container), each on a connection of its own: a
 * pooled keep-alive socket may lead to a container that is gone, its address since given to another
 * lab's container (which answers with a reset). Carries the lab's secret (RFC 6750 §2.1 bearer token).
 */
export function httpControlChannel(to: HttpControlTarget): ControlChannel {
  const port = to.port ?? CONTROL_PORT;
  const timeoutMs = to.timeoutMs ?? 10_000;
  const where = `control API ${to.host}:${port}`;
  let closed = false;
  const inFlight = new Set<() => void>();
  const fail = (why: string, hint: string) =>
    new FieldlabError('E_REMOTE_CONTROL', `${where}: ${why}`, { hint });
  const gone = "the simulator's container stopped or is not answering: see its logs in the report";
  return {
    request(body: ControlRequestBody): Promise<ControlReply> {
      if (closed) return Promise.reject(fail('the channel is closed', 'the lab is stopping'));
      return new Promise((resolve, reject) => {
        const req = httpRequest(
          {
            host: to.host,
            port,
            path: CONTROL_PATH,
            method: 'POST',
            agent: false,
            headers: { 'content-type': 'application/json', authorization: `Bearer ${to.token}` },
            timeout: timeoutMs,
          },
          (res) => {
            let text = '';
            res.setEncoding('utf8');
            res.on('data', (d: string) => (text += d));
            res.on('end', () => {
              inFlight.delete(abort);
              if (res.statusCode === 401) {
                reject(
                  fail(
                    'the lab’s secret was refused (401)',
                    'the worker was started with another lab’s spec',
                  ),
                );
                return;
              }
              let parsed: unknown;
              try {
                parsed = JSON.parse(text);
              } catch {
                parsed = undefined;
              }
              const r = controlReplySchema.safeParse(parsed);
              if (r.success) resolve(r.data);
              else
                reject(
                  fail(`answered ${res.statusCode} without a control reply: ${text.slice(0, 200)}`, gone),
                );
            });
            res.on('error', (err) => reject(fail(err.message, gone)));
          },
        );
        const abort = () => req.destroy(new Error('the channel was closed'));
        inFlight.add(abort);
        req.on('timeout', () => req.destroy(new Error(`no answer in ${timeoutMs} ms`)));
        req.on('error', (err) => {
          inFlight.delete(abort);
          reject(fail(err.message, gone));
        });
        req.end(JSON.stringify(body));
      });
    },
    close() {
      closed = true;
      for (const abort of [...inFlight]) abort();
      inFlight.clear();
    },
  };
}
