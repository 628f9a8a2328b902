import { FieldlabError } from '../../simulators/common/errors.js';

/**
 * k6 threshold expressions, parsed once: `<aggregation> <op> <number>` (`p(95)<500`, `rate<0.01`,
 * `count>0`, `max<=0.9`). The Node driver evaluates them with the same aggregation rules as k6; a k6 run
 * gets them as they are (k6 parses them itself) and they are checked here first, so a typo fails before a
 * load spends its duration.
 */

export type ThresholdOp = '<' | '<=' | '>' | '>=' | '==' | '===' | '!=';

export interface Threshold {
  /** The expression as written. */
  expression: string;
  /** `avg`, `min`, `max`, `med`, `count`, `rate`, `value`, `p(N)`. */
  aggregation: string;
  /** With `p(N)`: N (0–100). */
  percentile?: number;
  op: ThresholdOp;
  value: number;
}

const AGGREGATION = String.raw`(avg|min|max|med|count|rate|value|p\((\d+(?:\.\d+)?)\))`;
const THRESHOLD = new RegExp(String.raw`^\s*${AGGREGATION}\s*(<=|>=|===|==|!=|<|>)\s*(-?\d+(?:\.\d+)?)\s*$`);

/** Parses one k6 threshold expression; a FieldlabError names the metric and the expression otherwise. */
export function parseThreshold(metric: string, expression: string): Threshold {
  const t = THRESHOLD.exec(expression);
  if (!t) {
    throw new FieldlabError('E_BAD_THRESHOLD', `${metric}: cannot parse threshold ${expression}`, {
      hint: "k6 syntax: '<aggregation> <op> <number>', e.g. 'p(95)<500', 'rate<0.01', 'count>0'",
    });
  }
  const percentile = t[2] === undefined ? undefined : Number(t[2]);
  if (percentile !== undefined && percentile > 100) {
    throw new FieldlabError('E_BAD_THRESHOLD', `${metric}: ${expression}: a percentile is 0–100`, {
      hint: "e.g. 'p(95)<500'",
    });
  }
  return {
    expression,
    aggregation: t[1] as string,
    ...(percentile !== undefined ? { percentile } : {}),
    op: t[3] as ThresholdOp,
    value: Number(t[4]),
  };
}

/** Parses a whole `{ metric: [expressions] }` block (k6's `options.thresholds`). */
export function parseThresholds(thresholds: Record<string, string[]>): Array<{ metric: string } & Threshold> {
  return Object.entries(thresholds).flatMap(([metric, exprs]) =>
    exprs.map((e) => ({ metric, ...parseThreshold(metric, e) })),
  );
}

/** Whether `actual op limit` holds (k6 compares the aggregated value with the number). */
export function holds(actual: number, t: Pick<Threshold, 'op' | 'value'>): boolean {
  switch (t.op) {
    case '<':
      return actual < t.value;
    case '<=':
      return actual <= t.value;
    case '>':
      return actual > t.value;
    case '>=':
      return actual >= t.value;
    case '==':
    case '===':
      return actual === t.value;
    default:
      return actual !== t.value;
  }
}
