import { readFileSync } from 'node:fs';
import { connect } from 'node:net';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { Endpoint } from '../../simulators/common/handle.js';

/** Protocols without a TCP listener to try. */
const UDP = new Set(['udp', 'dns-udp']);

function reach(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  // A wildcard bind answers on loopback too.
  const target = host === '0.0.0.0' || host === '::' ? '127.0.0.1' : host;
  return new Promise((resolve) => {
    const s = connect({ host: target, port });
    const done = (why?: string) => {
      clearTimeout(timer);
      s.destroy();
      resolve(why);
    };
    const timer = setTimeout(() => done(`no answer in ${timeoutMs} ms`), timeoutMs);
    s.once('connect', () => done());
    s.once('error', (e: NodeJS.ErrnoException) => done(e.code ?? e.message));
  });
}

/** `fieldlab health`: the healthcheck of a `fieldlab serve` container. */
export async function healthCommand(flags: { readyFile?: string; timeout: number }): Promise<void> {
  const file = flags.readyFile ?? process.env.FIELDLAB_READY_FILE;
  if (!file) {
    throw new FieldlabError('E_BAD_FLAG', 'health needs --ready-file (or FIELDLAB_READY_FILE)', {
      hint: 'give `fieldlab serve` the same --ready-file',
    });
  }
  let ready: { name?: string; endpoints?: Endpoint[] };
  try {
    ready = JSON.parse(readFileSync(file, 'utf8')) as typeof ready;
  } catch {
    process.stderr.write(`fieldlab health: not ready (${file} not written yet)\n`);
    process.exit(1);
  }
  const tcp = (ready.endpoints ?? []).filter((e) => !UDP.has(e.protocol));
  const problems: string[] = [];
  for (const e of tcp) {
    const why = await reach(e.host, e.port, flags.timeout);
    if (why) problems.push(`${e.name} ${e.host}:${e.port}: ${why}`);
  }
  if (problems.length > 0) {
    process.stderr.write(`fieldlab health: ${ready.name ?? '?'} unhealthy: ${problems.join('; ')}\n`);
    process.exit(1);
  }
  process.stdout.write(`fieldlab health: ${ready.name ?? '?'} ok (${tcp.length} endpoint(s))\n`);
}
