import type { LabEvent } from '../../simulators/common/events.js';
import type { LoadResult } from '../load/result.js';
import type { FailureClass } from '../probe/classes.js';
import type { Phase } from '../probe/phases.js';

/** What a variant expected. */
export interface Expectation {
  result: 'pass' | 'fail';
  /** With `fail`: the class the failure must have. */
  class?: FailureClass;
  /** Upper bound on the client's total time, ms. */
  withinMs?: number;
  /** Lower bound on the client's total time, ms (e.g. a timeout must take at least the timeout). */
  atLeastMs?: number;
}

export type Status = 'passed' | 'failed' | 'skipped' | 'errored';

/** One scenario variant's run: what was expected, what happened, and the evidence. Stable JSON. */
export interface VariantResult {
  scenario: string;
  variant: string;
  /** The scenario's title, for people. */
  title: string;
  /** Scenario file, relative to the working directory when possible. */
  file: string;
  backend: string;
  /** passed: observed matched expected; failed: it did not; skipped: a capability is missing; errored: the harness or scenario broke. */
  status: Status;
  expected: Expectation;
  observed: {
    result: 'pass' | 'fail';
    class?: FailureClass;
    detail: string;
  } | null;
  /** Sentences for a person: why it passed/failed, from what the client and the lab saw. */
  explanation: string[];
  phases: Phase[];
  /** Client wall time, ms. */
  durationMs: number;
  startedAt: string;
  client?: {
    argv?: string[];
    exitCode?: number | null;
    signal?: string | null;
    stdout?: string;
    stderr?: string;
  };
  /** The variant's load: its figures, thresholds and charts' data (present when it declared a load that ran). */
  load?: LoadResult;
  /** The lab timeline for this variant (events of every simulator and relay). */
  events: LabEvent[];
  /**
   * Present when the lab's bounded timeline dropped events of this variant: `count` earlier events are
   * not in `events` (the timeline holds at most `maxEvents`; evidence is dropped after routine events).
   */
  droppedEvents?: { count: number; maxEvents: number };
  /** Container backend: each simulator container's last log lines (what was not an event). */
  logs?: Record<string, string[]>;
  skipReason?: string;
  error?: { code: string; message: string; hint?: string };
}

/** A whole run. */
export interface RunResult {
  /** Schema version of this JSON; bump on incompatible change. */
  schemaVersion: 1;
  tool: { name: 'fieldlab'; version: string };
  startedAt: string;
  durationMs: number;
  backend: string;
  results: VariantResult[];
  totals: Record<Status, number>;
}
