import type { Verdict } from './classes.js';
import type { CommandResult } from './command-result.js';

/**
 * dig's outcome. dig exits 0 for any answer, SERVFAIL and NXDOMAIN included (the status is in the
 * header line), and 9 when no server answered.
 */
export function classifyDig(r: CommandResult): Verdict {
  if (r.spawnError) return { ok: false, class: 'client.error', detail: r.spawnError };
  const out = `${r.stdout}\n${r.stderr}`;
  if (r.exitCode === 9 || /connection timed out; no servers could be reached/i.test(out)) {
    return { ok: false, class: 'dns.timeout', detail: 'dig: no server answered' };
  }
  const status = /status: ([A-Z]+)/.exec(r.stdout)?.[1];
  const answers = Number(/ANSWER: (\d+)/.exec(r.stdout)?.[1] ?? '0');
  switch (status) {
    case 'NOERROR':
      return answers > 0
        ? { ok: true, detail: `${answers} answer(s)` }
        : { ok: false, class: 'dns.nodata', detail: 'NOERROR with no answer (NODATA)' };
    case 'NXDOMAIN':
      return { ok: false, class: 'dns.nxdomain', detail: 'NXDOMAIN' };
    case 'SERVFAIL':
      return { ok: false, class: 'dns.servfail', detail: 'SERVFAIL' };
    case 'REFUSED':
      return { ok: false, class: 'dns.refused', detail: 'REFUSED' };
    default:
      return {
        ok: false,
        class: 'client.error',
        detail: `dig exit ${r.exitCode}${status ? `, status ${status}` : ''}: ${out.trim().split('\n').pop() ?? ''}`,
      };
  }
}
