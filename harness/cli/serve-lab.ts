import { readFileSync } from 'node:fs';
import { FieldlabError } from '../../simulators/common/errors.js';
import { type Authority, authoritySchema } from '../../simulators/pki/index.js';
import { startControlApi } from '../backends/remote/http-server.js';
import { CONTROL_PORT } from '../backends/remote/protocol.js';
import { localBinder } from '../backends/remote/public-binder.js';
import { type WorkerReady, type WorkerSpec, workerSpecSchema } from '../backends/remote/spec.js';
import { serveStdioControl } from '../backends/remote/stdio-server.js';
import { startInProcess } from '../lab/in-process.js';
import { startLab } from '../lab/lab.js';
import { workerNetwork } from '../lab/worker-network.js';
import { announceReady, stopOnSignals, writeLine } from './serving.js';

/**
 * `fieldlab serve-lab <spec>`: one simulator of a lab in a process of its own (a container of the
 * container backend, or a process in a network namespace), started the way the loopback lab starts it
 * (its adapter, the lab's CA, a relay in front of every TCP endpoint) but listening on the spec's
 * address (default all of the container's). It prints one ready line (its public endpoints, variables,
 * relayed endpoints and clock), then every lab event as a JSON line. Its lab controls the relays with the
 * control protocol (backends/remote/protocol.ts): over HTTP on CONTROL_PORT when the spec has the lab's
 * secret (anything without it gets a 401), and as JSON lines on stdin when the spec says `stdioControl`
 * (replies on stdout). A spec with neither (compose) has no control.
 */
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
  const bind = spec.bind ?? '0.0.0.0';
  const placement = { bind, dir: spec.dir, authority: specAuthority(spec) };
  // In a namespace the simulator binds its public ports itself (see `bindsPublic`).
  const worker = workerNetwork(placement);
  const binder = spec.bindsPublic ? localBinder(bind) : undefined;
  // The lab's names as its hosts resolve them (netns), for the simulators' labReady hooks.
  const names = spec.names && new Map(Object.entries(spec.names));
  const network = names ? { ...worker, clientNames: () => names } : worker;
  const lab = await startLab(
    {
      name: spec.lab,
      // Peers after the first, in the order the lab declared them (a DPS after its hub).
      simulators: [spec.simulator, ...(spec.peers ?? [])],
      container: placement,
      // The host keeps the lab's timeline (events go to it as lines): here only a short one.
      timeline: { maxEvents: 1000 },
    },
    binder
      ? {
          ...network,
          startSimulator: async (l, decl, index) =>
            (await startInProcess(l, decl, index, { interpolate: false, binder })).labReady,
        }
      : network,
  );
  lab.onEvent((e) => writeLine({ event: e }));

  const stop = async () => {
    control?.close();
    await lab.stop();
  };
  const control = spec.controlToken
    ? await startControlApi(lab, { token: spec.controlToken, host: bind, port: CONTROL_PORT })
    : undefined;

  const readyOf = (decl: WorkerSpec['simulator']) => {
    const sim = lab.sim(decl.name);
    return {
      simulator: decl.type,
      name: decl.name,
      endpoints: sim.endpoints,
      vars: sim.vars,
      relayed: [...sim.relays.keys()],
    };
  };
  // `fieldlab health` reads the ready file: the container is healthy once every endpoint answers.
  const ready: WorkerReady = {
    ready: true,
    ...readyOf(spec.simulator),
    pid: process.pid,
    peers: (spec.peers ?? []).map(readyOf),
    now: Date.now(),
  };
  announceReady(ready);
  if (spec.stdioControl) {
    // The lab holds our stdin: once it closes, nobody controls (or reads) this worker any more.
    serveStdioControl(lab, process.stdin, writeLine, () => {
      process.stderr.write(`fieldlab serve-lab: stdin closed: stopping ${spec.simulator.name}\n`);
      void stop().then(() => process.exit(0));
    });
  }
  stopOnSignals('fieldlab serve-lab', spec.simulator.name, stop);
}
