/**
 * Live progress of a run. On a terminal: one status line rewritten in place (variants done/total,
 * passed/failed, elapsed, the slowest variant still running, a load's VUs and current rate), with each
 * finished variant's line printed above it. Elsewhere (CI logs, a pipe): plain lines only, one per finished
 * variant with its place in the run, and a load's figures now and then.
 *
 *   ✓ https-endpoint/fixed  pass  182ms                       (finished lines scroll up)
 *   fieldlab 12/51 · 11 passed · 1 failed · 42.1s · slowest tunnel-ssh/fixed 12.0s · load 50 VUs 120/s
 */
import { formatMs } from '../../simulators/common/duration.js';
import type { VariantResult } from '../runner/result.js';
import { renderProgress } from './console.js';
import { cleanText, truncate } from './text.js';

/** Where progress goes: a terminal has `isTTY` (and `columns`); anything else gets plain lines. */
export interface ProgressStream {
  write(chunk: string): unknown;
  isTTY?: boolean;
  columns?: number;
}

/** What a running load reports: its virtual users and current rate (iterations or requests per second). */
export interface LoadStatus {
  vus: number;
  rate: number;
  /** What `rate` counts, e.g. `it/s`, `req/s`, `MB/s` (default `/s`). */
  unit?: string;
}

export interface ProgressOptions {
  color?: boolean;
  /** ms clock (tests pass their own). */
  now?: () => number;
  /** Terminal: how often the status line is redrawn while nothing happens, ms (default 1000; 0: never). */
  redrawMs?: number;
  /** Plain lines: at most one load line per variant this often, ms (default 10 s). */
  loadEveryMs?: number;
}

/** The status line's inputs. */
export interface ProgressState {
  done: number;
  total: number;
  passed: number;
  failed: number;
  elapsedMs: number;
  /** The variants running now, by how long they have run. */
  running: ReadonlyArray<{ id: string; ms: number; load?: LoadStatus }>;
}

function loadText(l: LoadStatus): string {
  const rate = l.rate >= 100 ? l.rate.toFixed(0) : l.rate.toFixed(1);
  return `${l.vus} VU${l.vus === 1 ? '' : 's'} ${rate}${l.unit ?? '/s'}`;
}

/**
 * The status line: `fieldlab 12/51 · 11 passed · 1 failed · 42.1s · slowest tunnel-ssh/fixed 12.0s`, with
 * `· load <id> 50 VUs 120/s` for each variant running a load; cut to `width` characters.
 */
export function renderStatusLine(s: ProgressState, width = 120): string {
  const parts = [
    `fieldlab ${s.done}/${s.total}`,
    `${s.passed} passed`,
    `${s.failed} failed`,
    formatMs(s.elapsedMs),
  ];
  let slowest: ProgressState['running'][number] | undefined;
  for (const r of s.running) if (!slowest || r.ms > slowest.ms) slowest = r;
  if (slowest) parts.push(`slowest ${slowest.id} ${formatMs(slowest.ms)}`);
  for (const r of s.running) if (r.load) parts.push(`load ${r.id} ${loadText(r.load)}`);
  return truncate(cleanText(parts.join(' · ')), Math.max(10, width));
}

/** Erase the terminal line and return to its start (ECMA-48 EL 2 after CR). */
const CLEAR_LINE = '\r\u001b[2K';

export class Progress {
  private readonly tty: boolean;
  private readonly now: () => number;
  private readonly started: number;
  private readonly running = new Map<string, { since: number; load?: LoadStatus; loadPrinted?: number }>();
  private done = 0;
  private passed = 0;
  private failed = 0;
  private timer: NodeJS.Timeout | undefined;
  private drawn = false;

  constructor(
    private readonly stream: ProgressStream,
    private readonly total: number,
    private readonly opts: ProgressOptions = {},
  ) {
    this.tty = stream.isTTY === true;
    this.now = opts.now ?? (() => performance.now());
    this.started = this.now();
    const every = opts.redrawMs ?? 1000;
    if (this.tty && every > 0) {
      this.timer = setInterval(() => this.draw(), every);
      // Progress never keeps the process alive.
      this.timer.unref();
    }
  }

  /** A variant started (`scenario/variant`). */
  start(id: string): void {
    this.running.set(id, { since: this.now() });
    this.draw();
  }

  /** A running variant's load reports its figures. */
  load(id: string, status: LoadStatus): void {
    const r = this.running.get(id);
    if (!r) return;
    r.load = status;
    if (this.tty) {
      this.draw();
      return;
    }
    const t = this.now();
    if (r.loadPrinted !== undefined && t - r.loadPrinted < (this.opts.loadEveryMs ?? 10_000)) return;
    r.loadPrinted = t;
    this.stream.write(`  ${cleanText(id)}  load ${loadText(status)}  ${formatMs(t - r.since)}\n`);
  }

  /** A variant finished: its line (above the status line on a terminal). */
  finish(r: VariantResult): void {
    this.running.delete(`${r.scenario}/${r.variant}`);
    this.done++;
    if (r.status === 'passed') this.passed++;
    else if (r.status === 'failed' || r.status === 'errored') this.failed++;
    const line = renderProgress(r, { color: this.opts.color === true });
    if (this.tty) {
      this.stream.write(`${this.drawn ? CLEAR_LINE : ''}${line}\n`);
      this.drawn = false;
      this.draw();
    } else {
      this.stream.write(`[${this.done}/${this.total}] ${line}\n`);
    }
  }

  /** The status line now. */
  state(): ProgressState {
    const t = this.now();
    return {
      done: this.done,
      total: this.total,
      passed: this.passed,
      failed: this.failed,
      elapsedMs: t - this.started,
      running: [...this.running].map(([id, r]) => ({
        id,
        ms: t - r.since,
        ...(r.load ? { load: r.load } : {}),
      })),
    };
  }

  /** Stops redrawing and erases the status line (the report comes next). */
  stop(): void {
    if (this.timer) clearInterval(this.timer);
    this.timer = undefined;
    if (this.tty && this.drawn) this.stream.write(CLEAR_LINE);
    this.drawn = false;
  }

  private draw(): void {
    if (!this.tty) return;
    // One character short of the width: writing the last column wraps on some terminals.
    const width = (this.stream.columns ?? 120) - 1;
    this.stream.write(`${CLEAR_LINE}${renderStatusLine(this.state(), width)}`);
    this.drawn = true;
  }
}
