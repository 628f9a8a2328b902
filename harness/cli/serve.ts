import { readFileSync } from 'node:fs';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { adapterFor, adapterTypes } from '../adapters/index.js';
import { announceReady, stopOnSignals, writeLine } from './serving.js';

/**
 * `fieldlab serve <simulator>`: one simulator as its own process, configured with its own options as
 * JSON (what its `start(options)` takes, certificates as PEM strings). This is how simulators run
 * inside network namespaces and containers: the parent lab prepares the options, the child serves.
 * Prints one JSON line `{"ready":true,...}` with the endpoints, then (with --events) one line per event.
 * A value `{"$file": "/path"}` anywhere in the options is replaced by that file's text (certificates
 * from a shared volume); `--ready-file` also writes the ready line to a file, which `fieldlab health`
 * (a container's healthcheck) reads. Every type of the simulator registry that can run alone is served.
 */

/** The simulator types `fieldlab serve` runs: every registered type that can run without a lab. */
export function servableTypes(): string[] {
  return adapterTypes().filter((t) => adapterFor(t)?.serve !== undefined);
}

export interface ServeFlags {
  options?: string;
  optionsFile?: string;
  host?: string;
  port?: number;
  events?: boolean;
  readyFile?: string;
}

/** Replaces every `{"$file": path}` with the file's text; a missing file is a clear error. */
export function resolveFileRefs(v: unknown, where = 'options'): unknown {
  if (Array.isArray(v)) return v.map((x, i) => resolveFileRefs(x, `${where}[${i}]`));
  if (v === null || typeof v !== 'object') return v;
  const o = v as Record<string, unknown>;
  const keys = Object.keys(o);
  if (keys.length === 1 && keys[0] === '$file') {
    if (typeof o.$file !== 'string') throw new FieldlabError('E_BAD_FLAG', `${where}.$file must be a path`);
    try {
      return readFileSync(o.$file, 'utf8');
    } catch (err) {
      throw new FieldlabError('E_BAD_FLAG', `${where}: cannot read ${o.$file}: ${(err as Error).message}`, {
        hint: 'is the volume with that file mounted (and written by the pki service)?',
      });
    }
  }
  return Object.fromEntries(keys.map((k) => [k, resolveFileRefs(o[k], `${where}.${k}`)]));
}

function readOptions(flags: ServeFlags): Record<string, unknown> {
  const text = flags.optionsFile ? readFileSync(flags.optionsFile, 'utf8') : (flags.options ?? '{}');
  let parsed: unknown;
  try {
    parsed = JSON.parse(text);
  } catch (err) {
    throw new FieldlabError(
      'E_BAD_FLAG',
      `--options${flags.optionsFile ? '-file' : ''} is not JSON: ${(err as Error).message}`,
      {
        hint: `give the simulator's options as a JSON object, e.g. --options '{"port":8443}'`,
      },
    );
  }
  if (parsed === null || typeof parsed !== 'object' || Array.isArray(parsed)) {
    throw new FieldlabError('E_BAD_FLAG', 'the simulator options must be a JSON object');
  }
  return parsed as Record<string, unknown>;
}

export async function serveCommand(type: string, flags: ServeFlags): Promise<void> {
  const adapter = adapterFor(type);
  if (!adapter) {
    throw new FieldlabError('E_UNKNOWN_SIMULATOR', `unknown simulator ${type}`, {
      hint: `servable: ${servableTypes().join(', ')}`,
    });
  }
  if (!adapter.serve) {
    throw new FieldlabError('E_NOT_SERVABLE', `${type} cannot run alone: it only runs as part of a lab`, {
      hint: `run it in a scenario's lab (fieldlab up / run); servable alone: ${servableTypes().join(', ')}`,
    });
  }
  const options = {
    ...(resolveFileRefs(readOptions(flags)) as Record<string, unknown>),
    ...(flags.host !== undefined ? { host: flags.host } : {}),
    ...(flags.port !== undefined ? { port: flags.port } : {}),
  };
  const handle = await adapter.serve(options);
  if (flags.events) handle.events.onAny((e: LabEvent) => writeLine({ event: e }));
  announceReady(
    { ready: true, simulator: type, name: handle.name, pid: process.pid, endpoints: handle.endpoints },
    flags.readyFile,
  );
  stopOnSignals('fieldlab serve', handle.name, () => handle.stop());
}
