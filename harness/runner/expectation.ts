import { formatMs } from '../../simulators/common/duration.js';
import type { LabEvent } from '../../simulators/common/events.js';
import type { Verdict } from '../probe/classes.js';
import type { ExpectDecl } from '../scenario/model.js';

/** An event a scenario's `labSaw`/`labNeverSaw` (or a test's `toHaveSeen`) looks for. */
export interface EventQuery {
  source: string;
  type: string;
  match?: Record<string, unknown>;
}

/** Same source and type, and every `match` field of the event's data equal (by `equals`, default ===). */
export function eventMatches(
  e: LabEvent,
  want: EventQuery,
  equals: (a: unknown, b: unknown) => boolean = (a, b) => a === b,
): boolean {
  if (e.source !== want.source || e.type !== want.type) return false;
  const data = e.data && typeof e.data === 'object' ? (e.data as Record<string, unknown>) : {};
  return Object.entries(want.match ?? {}).every(([k, v]) => equals(data[k], v));
}

/** Compares what happened with what a variant expected; returns the mismatches as sentences. */
export function checkExpectation(
  expect: ExpectDecl,
  verdict: Verdict,
  durationMs: number,
  events: LabEvent[],
  stdout = '',
  explanation: readonly string[] = [],
): string[] {
  const problems: string[] = [];
  const observed = verdict.ok ? 'pass' : `fail ${verdict.class}`;
  if (expect.result === 'pass' && !verdict.ok)
    problems.push(`expected pass, observed ${observed}: ${verdict.detail}`);
  if (expect.result === 'fail') {
    if (verdict.ok) problems.push(`expected fail ${expect.class}, observed pass`);
    else if (verdict.class !== expect.class)
      problems.push(`expected fail ${expect.class}, observed ${observed}: ${verdict.detail}`);
  }
  const within = 'within' in expect ? expect.within : undefined;
  const atLeast = 'atLeast' in expect ? expect.atLeast : undefined;
  if (within !== undefined && durationMs > within) {
    problems.push(
      `expected the client to finish within ${formatMs(within)}, it took ${formatMs(durationMs)}`,
    );
  }
  if (atLeast !== undefined && durationMs < atLeast) {
    problems.push(
      `expected the client to take at least ${formatMs(atLeast)}, it took ${formatMs(durationMs)}`,
    );
  }
  const output = 'output' in expect ? expect.output : undefined;
  if (output !== undefined && !new RegExp(output, 'm').test(stdout)) {
    problems.push(`expected the client's output to match /${output}/; it did not`);
  }
  const matches = (want: EventQuery) => events.some((e) => eventMatches(e, want));
  const describe = (want: EventQuery) =>
    `${want.source} to see ${want.type}${want.match ? ` with ${JSON.stringify(want.match)}` : ''}`;
  for (const want of expect.labSaw) {
    if (!matches(want)) problems.push(`expected ${describe(want)}; it did not`);
  }
  for (const want of 'labNeverSaw' in expect ? expect.labNeverSaw : []) {
    if (matches(want))
      problems.push(`expected ${describe(want).replace(' to see ', ' never to see ')}; it did`);
  }
  const explains = 'explains' in expect ? expect.explains : undefined;
  if (explains !== undefined && !explanation.some((l) => new RegExp(explains, 'm').test(l))) {
    problems.push(`expected the explanation to say /${explains}/; it said: ${explanation.join(' | ')}`);
  }
  return problems;
}
