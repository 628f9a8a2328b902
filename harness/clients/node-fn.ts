import type { LookupFunction } from 'node:net';
import { performance } from 'node:perf_hooks';
import type { Phase, PhaseName } from '../probe/phases.js';

/** What a Node function client gets: the lab's name resolution, trust, environment and a phase marker. */
export interface NodeClientContext {
  /** Aborted when the client's time is up: pass it to fetch/sockets so work stops. */
  signal: AbortSignal;
  /** Resolves lab names (use as `lookup` in net/tls/http options or undici's `connect`). */
  lookup: LookupFunction;
  /** The lab's trusted roots (PEM). */
  ca: string[];
  env: Record<string, string>;
  /** Reports a phase edge; times are taken here, in ms from the client's start. */
  mark(phase: PhaseName, edge: 'start' | 'end'): void;
}

export interface NodeFnResult {
  ok: boolean;
  value?: unknown;
  error?: unknown;
  durationMs: number;
  /** In the order they started; a phase with no `end` never finished. */
  phases: Phase[];
  timedOut: boolean;
}

export interface NodeFnOptions {
  timeoutMs: number;
  ctx: Omit<NodeClientContext, 'signal' | 'mark'>;
}

/**
 * Runs a Node function client with a deadline. Resolves (never rejects) when the function settles or
 * the deadline passes, whichever comes first; on the deadline the context's signal is aborted with a
 * TimeoutError so a well-behaved client stops, and the result says `timedOut`.
 */
export async function runNodeFunction(
  fn: (ctx: NodeClientContext) => Promise<unknown>,
  opts: NodeFnOptions,
): Promise<NodeFnResult> {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const phases: Phase[] = [];
  const controller = new AbortController();
  const mark = (name: PhaseName, edge: 'start' | 'end') => {
    if (edge === 'start') {
      phases.push({ name, start: now() });
      return;
    }
    const open = phases.findLast((p) => p.name === name && p.end === undefined);
    if (open) open.end = now();
    else phases.push({ name, start: now(), end: now() }); // an end without a start: a zero-length mark
  };
  const ctx: NodeClientContext = { ...opts.ctx, signal: controller.signal, mark };
  let timer: NodeJS.Timeout | undefined;
  const deadline = new Promise<'timeout'>((resolve) => {
    timer = setTimeout(() => resolve('timeout'), opts.timeoutMs);
  });
  type Settled = { ok: true; value: unknown } | { ok: false; error: unknown };
  const work: Promise<Settled> = Promise.resolve()
    .then(() => fn(ctx))
    .then(
      (value) => ({ ok: true as const, value }),
      (error: unknown) => ({ ok: false as const, error }),
    );
  const settled = await Promise.race([work, deadline]);
  clearTimeout(timer);
  if (settled === 'timeout') {
    const reason = new DOMException(`the client did not finish in ${opts.timeoutMs} ms`, 'TimeoutError');
    controller.abort(reason);
    return { ok: false, error: reason, durationMs: now(), phases, timedOut: true };
  }
  const base = { durationMs: now(), phases, timedOut: false };
  return settled.ok
    ? { ok: true, value: settled.value, ...base }
    : { ok: false, error: settled.error, ...base };
}
