import { createHash, timingSafeEqual } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type Authority, authoritySchema } from '../../simulators/pki/index.js';
import { announceReady, stopOnSignals, writeLine } from '../cli/serving.js';
import { toxicSpecSchema } from '../faults/spec.js';
import { type Lab, type LabSimulator, startLab } from './lab.js';

/**
 * The container backend's worker (`fieldlab serve-lab <spec>`): one simulator of a lab in its own
 * container, started the way the loopback lab starts it (its adapter, the lab's CA, a relay in front of
 * every TCP endpoint) but listening on all of the container's addresses. It prints one ready line (its
 * public endpoints and variables), then every lab event as a JSON line; the host adds toxics through a
 * small control API (`POST /toxics {target, toxic}`) on CONTROL_PORT, which answers only requests that
 * carry the lab's secret (its spec's `controlToken`): anything else on the lab network (the client
 * under test, another lab's container) gets a 401. A spec without a secret (compose) has no control API.
 */
export const CONTROL_PORT = 7070;

/** Largest control request body read (a toxic is a few hundred bytes). */
const MAX_CONTROL_BODY = 64 * 1024;

export const workerSpecSchema = z.strictObject({
  lab: z.string().min(1),
  /** The simulator, its options already filled in as the lab's containers see the lab. */
  simulator: z.custom<LabSimulator>(
    (v) => typeof v === 'object' && v !== null && typeof (v as LabSimulator).type === 'string',
  ),
  /** This simulator's own directory on the lab's shared volume. */
  dir: z.string().min(1),
  /** The lab CA, inline or as the file `fieldlab pki` writes (`authority.json`, compose's shared volume). */
  authority: authoritySchema.optional(),
  authorityFile: z.string().min(1).optional(),
  /** The lab's secret for the control API (Authorization: Bearer); without it, no control API. */
  controlToken: z.string().min(32).optional(),
});
export type WorkerSpec = z.infer<typeof workerSpecSchema>;

const toxicRequest = z.strictObject({ target: z.string().min(1), toxic: toxicSpecSchema });

function readSpec(file: string): WorkerSpec {
  let data: unknown;
  try {
    data = JSON.parse(readFileSync(file, 'utf8'));
  } catch (err) {
    throw new FieldlabError('E_BAD_FLAG', `serve-lab: cannot read ${file}: ${(err as Error).message}`);
  }
  const r = workerSpecSchema.safeParse(data);
  if (!r.success) {
    const issue = r.error.issues[0];
    throw new FieldlabError(
      'E_BAD_FLAG',
      `serve-lab: ${file}: ${issue?.path.join('.') ?? ''}: ${issue?.message ?? 'invalid'}`,
    );
  }
  return r.data;
}

/** The lab CA of a spec, read from its file when given one. */
function specAuthority(spec: WorkerSpec): Authority {
  if (spec.authority) return spec.authority;
  if (!spec.authorityFile) {
    throw new FieldlabError('E_BAD_FLAG', 'serve-lab: the spec needs authority or authorityFile', {
      hint: '`fieldlab pki --dir /lab` writes /lab/authority.json',
    });
  }
  const parsed = authoritySchema.safeParse(JSON.parse(readFileSync(spec.authorityFile, 'utf8')));
  if (!parsed.success)
    throw new FieldlabError('E_BAD_FLAG', `serve-lab: ${spec.authorityFile} is not a lab CA`);
  return parsed.data;
}

export async function serveLabCommand(specFile: string): Promise<void> {
  const spec = readSpec(specFile);
  const lab = await startLab({
    name: spec.lab,
    simulators: [spec.simulator],
    container: { bind: '0.0.0.0', dir: spec.dir, authority: specAuthority(spec) },
    // The host keeps the lab's timeline (events go to it as log lines): here only a short one.
    timeline: { maxEvents: 1000 },
  });
  lab.onEvent((e) => writeLine({ event: e }));

  const control = spec.controlToken
    ? await startControlApi(lab, { token: spec.controlToken, host: '0.0.0.0', port: CONTROL_PORT })
    : undefined;

  const sim = lab.sim(spec.simulator.name);
  // `fieldlab health` reads the ready file: the container is healthy once every endpoint answers.
  announceReady({
    ready: true,
    simulator: spec.simulator.type,
    name: spec.simulator.name,
    pid: process.pid,
    endpoints: sim.endpoints,
    vars: sim.vars,
  });
  stopOnSignals('fieldlab serve-lab', spec.simulator.name, async () => {
    control?.close();
    await lab.stop();
  });
}

/** Whether an Authorization header carries the bearer token, compared in constant time. */
function authorized(header: string | undefined, token: string): boolean {
  // RFC 6750 §2.1: `Bearer <token>`; the scheme is case-insensitive (RFC 9110 §11.1).
  const m = /^Bearer +(\S+) *$/i.exec(header ?? '');
  if (!m?.[1]) return false;
  // Digests: equal lengths for timingSafeEqual, and the token's length does not leak either.
  const digest = (s: string) => createHash('sha256').update(s).digest();
  return timingSafeEqual(digest(m[1]), digest(token));
}

/**
 * The worker's control API: `POST /toxics {target, toxic}` adds a toxic to one of its relays. Every
 * request must carry the lab's secret (`Authorization: Bearer <token>`), checked before anything else
 * is read: without it, 401 and nothing happens.
 */
export async function startControlApi(
  lab: Lab,
  opts: { token: string; host: string; port: number },
): Promise<Server> {
  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answer = (status: number, body: unknown, headers: Record<string, string> = {}) => {
      res.writeHead(status, { 'content-type': 'application/json', ...headers });
      res.end(JSON.stringify(body));
    };
    if (!authorized(req.headers.authorization, opts.token)) {
      // RFC 6750 §3: 401 with a Bearer challenge; `invalid_token` when one was given (§3.1).
      const given = req.headers.authorization !== undefined;
      req.resume();
      return answer(
        401,
        { error: 'the control API needs the lab’s secret (Authorization: Bearer)' },
        { 'www-authenticate': `Bearer realm="fieldlab-control"${given ? ', error="invalid_token"' : ''}` },
      );
    }
    if (req.method !== 'POST' || req.url !== '/toxics') {
      req.resume();
      return answer(404, { error: 'POST /toxics' });
    }
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => {
      body += d;
      if (body.length > MAX_CONTROL_BODY) {
        answer(413, { error: `a control request is at most ${MAX_CONTROL_BODY} bytes` });
        req.destroy();
      }
    });
    req.on('end', () => {
      if (res.headersSent) return;
      try {
        const r = toxicRequest.parse(JSON.parse(body));
        answer(200, { toxic: lab.relay(r.target).addToxic(r.toxic) });
      } catch (err) {
        answer(400, { error: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve, reject) => {
    control.once('error', reject);
    control.listen(opts.port, opts.host, () => {
      control.off('error', reject);
      resolve();
    });
  });
  return control;
}
