import { basename } from 'node:path';
import { formatMs } from '../../simulators/common/duration.js';
import type { CommandResult } from '../clients/command.js';
import type { Verdict } from '../probe/classes.js';
import { classifyCurl, curlProxyArg, parseCurlTimings } from '../probe/curl.js';
import { classifyDig } from '../probe/dig.js';
import type { Phase } from '../probe/phases.js';
import { classifyText } from '../probe/text.js';
import type { ClientDecl } from '../scenario/model.js';

type CommandClient = Extract<ClientDecl, { type: 'command' }>;

/** Whether the command is curl, read by curl's own exit codes and timings. */
export function isCurlClient(client: CommandClient, argv: readonly string[]): boolean {
  return client.classify === 'curl' || (client.classify === 'auto' && basename(argv[0] ?? '') === 'curl');
}

/**
 * What a command client's run came to: curl and dig by their own outputs; any other program by its exit
 * code and the failure names it printed (the lab's evidence refines this afterwards).
 */
export function classifyCommand(
  client: CommandClient,
  argv: readonly string[],
  result: CommandResult,
  timeoutMs: number,
): { verdict: Verdict; phases: Phase[]; ownTotalMs?: number } {
  if (client.classify === 'dig' || (client.classify === 'auto' && basename(argv[0] ?? '') === 'dig')) {
    return { verdict: classifyDig(result), phases: [] };
  }
  if (isCurlClient(client, argv)) {
    const proxy = curlProxyArg(argv);
    const timings = parseCurlTimings(result.stdout, result.stderr);
    return {
      verdict: classifyCurl(result, proxy ? { proxy } : {}),
      phases: timings?.phases ?? [],
      // curl's own total: where its timers end, even when a phase never did.
      ...(timings ? { ownTotalMs: timings.totalMs } : {}),
    };
  }
  if (result.spawnError)
    return { verdict: { ok: false, class: 'client.error', detail: result.spawnError }, phases: [] };
  if (result.timedOut) {
    return {
      verdict: { ok: false, class: 'client.timeout', detail: `killed after ${formatMs(timeoutMs)}` },
      phases: [],
    };
  }
  if (result.exitCode === 0) return { verdict: { ok: true }, phases: [] };
  const last = result.stderr.trim().split('\n').pop() ?? '';
  const detail = `exit code ${result.exitCode}${last ? `: ${last}` : ''}`;
  const named = client.classify === 'exit-code' ? undefined : classifyText(result.stderr.slice(-8192));
  return { verdict: { ok: false, class: named ?? 'client.error', detail }, phases: [] };
}
