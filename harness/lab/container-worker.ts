import { readFileSync } from 'node:fs';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type Authority, authoritySchema } from '../../simulators/pki/index.js';
import { announceReady, stopOnSignals, writeLine } from '../cli/serving.js';
import { toxicSpecSchema } from '../faults/spec.js';
import { type LabSimulator, startLab } from './lab.js';

/**
 * The container backend's worker (`fieldlab serve-lab <spec>`): one simulator of a lab in its own
 * container, started the way the loopback lab starts it (its adapter, the lab's CA, a relay in front of
 * every TCP endpoint) but listening on all of the container's addresses. It prints one ready line (its
 * public endpoints and variables), then every lab event as a JSON line; the host adds toxics through a
 * small control API (`POST /toxics {target, toxic}`) on CONTROL_PORT.
 */
export const CONTROL_PORT = 7070;

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
  });
  lab.onEvent((e) => writeLine({ event: e }));

  const control = createServer((req: IncomingMessage, res: ServerResponse) => {
    const answer = (status: number, body: unknown) => {
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(JSON.stringify(body));
    };
    if (req.method !== 'POST' || req.url !== '/toxics') return answer(404, { error: 'POST /toxics' });
    let body = '';
    req.setEncoding('utf8').on('data', (d: string) => (body += d));
    req.on('end', () => {
      try {
        const r = toxicRequest.parse(JSON.parse(body));
        answer(200, { toxic: lab.relay(r.target).addToxic(r.toxic) });
      } catch (err) {
        answer(400, { error: (err as Error).message });
      }
    });
  });
  await new Promise<void>((resolve) => control.listen(CONTROL_PORT, '0.0.0.0', resolve));

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
    control.close();
    await lab.stop();
  });
}
