/**
 * The JSON report's schema, as zod: one definition mirroring `harness/runner/result.ts`, from which the
 * published JSON Schema (draft 2020-12) is derived. The type checks at the bottom fail to compile when
 * result.ts and this file drift apart.
 */
import { z } from 'zod';
import { FAILURE_CLASS_NAMES, type FailureClass } from '../probe/classes.js';
import { PHASE_NAMES } from '../probe/phases.js';
import type { RunResult } from '../runner/result.js';

const failureClassSchema = z
  .enum(FAILURE_CLASS_NAMES as [FailureClass, ...FailureClass[]])
  .describe('A failure class (harness/probe/classes.ts).');

const ms = z.number().nonnegative();

export const statusSchema = z.enum(['passed', 'failed', 'skipped', 'errored']);

export const expectationSchema = z.object({
  result: z.enum(['pass', 'fail']),
  class: failureClassSchema.optional(),
  withinMs: ms.optional().describe("Upper bound on the client's total time, ms."),
  atLeastMs: ms.optional().describe("Lower bound on the client's total time, ms."),
});

export const phaseSchema = z.object({
  name: z.enum(PHASE_NAMES),
  start: z.number().describe("ms from the client's start (lab phases may start before it: negative)"),
  end: z.number().optional().describe('absent when the phase never finished'),
  source: z
    .enum(['client', 'lab'])
    .optional()
    .describe('who measured it: the client (curl, the probe) or the lab (its events); absent: client'),
  connection: z
    .string()
    .optional()
    .describe("lab phases: the TCP connection the lab saw it on (the relay's, e.g. `hub.amqps#1`)"),
});

export const labEventSchema = z.object({
  time: z.number().describe('ms since the Unix epoch, sub-millisecond precision'),
  source: z.string(),
  type: z.string(),
  data: z.unknown(),
});

export const thresholdResultSchema = z.object({
  metric: z.string(),
  expression: z.string().describe("k6 syntax, e.g. 'p(95)<500'"),
  value: z.number().describe("the aggregation's value"),
  aggregation: z.string(),
  ok: z.boolean().describe('the threshold held'),
});

export const loadResultSchema = z
  .object({
    driver: z.enum(['node', 'k6']),
    script: z.string().describe('the Node workload or the k6 script'),
    vus: z.number().int().positive(),
    durationMs: ms,
    iterations: z.number().int().nonnegative(),
    errors: z.number().nonnegative(),
    metrics: z.record(
      z.string(),
      z.object({
        type: z.enum(['counter', 'trend', 'rate']),
        unit: z.string().optional(),
        values: z
          .record(z.string(), z.number())
          .describe(
            'trend: count avg min med max p(50) p(90) p(95) p(99); counter: count rate; rate: value passes fails',
          ),
      }),
    ),
    thresholds: z.array(thresholdResultSchema),
    histogram: z
      .object({
        metric: z.string(),
        unit: z.string(),
        buckets: z.array(
          z.object({ from: z.number(), to: z.number(), count: z.number().int().nonnegative() }),
        ),
      })
      .optional(),
    series: z
      .object({
        metric: z.string(),
        unit: z.string(),
        stepMs: z.number().positive(),
        points: z.array(z.number()),
      })
      .optional()
      .describe('throughput over time: point i covers [i·stepMs, (i+1)·stepMs) from the start of the load'),
    output: z.string().optional(),
    exitCode: z.number().int().optional(),
  })
  .describe("A variant's load: its figures, thresholds, and the data of the report's charts.");

export const variantResultSchema = z.object({
  scenario: z.string(),
  variant: z.string(),
  title: z.string(),
  file: z.string(),
  backend: z.string(),
  status: statusSchema,
  expected: expectationSchema,
  observed: z
    .object({
      result: z.enum(['pass', 'fail']),
      class: failureClassSchema.optional(),
      detail: z.string(),
    })
    .nullable(),
  explanation: z.array(z.string()),
  phases: z.array(phaseSchema),
  durationMs: ms.describe('client wall time, ms'),
  startedAt: z.iso.datetime(),
  client: z
    .object({
      argv: z.array(z.string()).optional(),
      exitCode: z.number().int().nullable().optional(),
      signal: z.string().nullable().optional(),
      stdout: z.string().optional(),
      stderr: z.string().optional(),
    })
    .optional(),
  load: loadResultSchema.optional(),
  events: z.array(labEventSchema),
  droppedEvents: z
    .object({
      count: z.number().int().positive().describe('events of this variant not in `events`'),
      maxEvents: z.number().int().positive().describe('the most events the lab timeline holds'),
    })
    .optional()
    .describe(
      'Present when the lab timeline (bounded) dropped events of this variant; routine events go before evidence.',
    ),
  /** Container backend: each simulator container's last log lines (what was not an event). */
  logs: z.record(z.string(), z.array(z.string())).optional(),
  skipReason: z.string().optional(),
  error: z.object({ code: z.string(), message: z.string(), hint: z.string().optional() }).optional(),
});

/**
 * A whole run: the shape of `fieldlab-report.json`. Parsing keeps result.ts's key order and drops unknown
 * keys.
 */
export const runResultSchema = z
  .object({
    schemaVersion: z.literal(1),
    tool: z.object({ name: z.literal('fieldlab'), version: z.string() }),
    startedAt: z.iso.datetime(),
    durationMs: ms,
    backend: z.string(),
    results: z.array(variantResultSchema),
    totals: z.object({
      passed: z.number().int().nonnegative(),
      failed: z.number().int().nonnegative(),
      skipped: z.number().int().nonnegative(),
      errored: z.number().int().nonnegative(),
    }),
  })
  .meta({
    title: 'fieldlab run report',
    description: 'The result of a fieldlab run (fieldlab-report.json), schemaVersion 1.',
  });

// Compile-time drift check: each type must be assignable to the other.
type Parsed = z.output<typeof runResultSchema>;
type Assert<T extends true> = T;
export type _ParsedIsRunResult = Assert<Parsed extends RunResult ? true : false>;
export type _RunResultIsParsed = Assert<RunResult extends Parsed ? true : false>;
