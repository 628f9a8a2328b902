import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';

/**
 * A lab's event timeline, bounded: it holds at most `maxEvents` events, so a lab that runs for days
 * (`fieldlab up`) keeps flat memory however much traffic it sees.
 *
 * Events come in two kinds sharing that one bound:
 *   evidence  what a run's verdict reads (`keep` says which: denials, TLS failures, toxics, the events a
 *             scenario's `labSaw` names...)
 *   routine   everything else (connections accepted and closed, requests, publishes...)
 *
 *   add ──► evidence queue ─┐
 *       └─► routine queue  ─┴─► (merged in arrival order on read)
 *
 * When full, the oldest routine event goes first; only when every event held is evidence does the oldest
 * evidence event go. So a flood of routine traffic never pushes out the denial that explains a run, and
 * the newest events of each kind are always there. Every event dropped is counted, and a report says
 * so ("N earlier events dropped").
 */
export const DEFAULT_MAX_EVENTS = 10_000;

export interface TimelineOptions {
  /** At most this many events are held (default DEFAULT_MAX_EVENTS). */
  maxEvents?: number;
  /** Which events a run needs (kept over routine ones when the timeline is full). Default: none. */
  keep?: (e: LabEvent) => boolean;
}

interface Entry {
  seq: number;
  event: LabEvent;
}

/** A FIFO queue with O(1) push and shift (an array with a moving head, compacted as it empties). */
class Queue {
  private items: Array<Entry | undefined> = [];
  private head = 0;

  get length(): number {
    return this.items.length - this.head;
  }

  push(e: Entry): void {
    this.items.push(e);
  }

  shift(): Entry | undefined {
    if (this.head >= this.items.length) return undefined;
    const e = this.items[this.head];
    this.items[this.head++] = undefined;
    // Compact once the dead half outweighs the live one: the array stays within twice the bound.
    if (this.head >= 1024 && this.head * 2 >= this.items.length) {
      this.items = this.items.slice(this.head);
      this.head = 0;
    }
    return e;
  }

  *[Symbol.iterator](): Generator<Entry> {
    for (let i = this.head; i < this.items.length; i++) {
      const e = this.items[i];
      if (e) yield e;
    }
  }
}

export class Timeline {
  readonly maxEvents: number;
  private readonly keep: (e: LabEvent) => boolean;
  private readonly evidence = new Queue();
  private readonly routine = new Queue();
  private seq = 0;
  private droppedTotal = 0;
  private windowStart = Number.NEGATIVE_INFINITY;
  private droppedWindow = 0;

  constructor(opts: TimelineOptions = {}) {
    const max = opts.maxEvents ?? DEFAULT_MAX_EVENTS;
    if (!Number.isInteger(max) || max < 1) {
      throw new FieldlabError('E_BAD_OPTION', `maxEvents: expected a whole number ≥ 1, got ${String(max)}`, {
        hint: `the lab timeline holds at most maxEvents events (default ${DEFAULT_MAX_EVENTS})`,
      });
    }
    this.maxEvents = max;
    this.keep = opts.keep ?? (() => false);
  }

  /** Events held now (≤ maxEvents). */
  get size(): number {
    return this.evidence.length + this.routine.length;
  }

  /** Events dropped since the lab started. */
  get dropped(): number {
    return this.droppedTotal;
  }

  /** Events stamped at or after the start of the window (`openWindow`) that were dropped. */
  get droppedInWindow(): number {
    return this.droppedWindow;
  }

  /**
   * Starts counting the dropped events stamped at or after `t` (a run's window, read with
   * `eventsSince(t)`): events from before it (the lab's start) leaving the timeline are not the run's.
   */
  openWindow(t: number): void {
    this.windowStart = t;
    this.droppedWindow = 0;
  }

  add(event: LabEvent): void {
    (this.keep(event) ? this.evidence : this.routine).push({ seq: this.seq++, event });
    while (this.size > this.maxEvents) {
      const gone = this.routine.shift() ?? this.evidence.shift();
      if (!gone) break;
      this.droppedTotal++;
      if (gone.event.time >= this.windowStart) this.droppedWindow++;
    }
  }

  /** Every event held, in arrival order. */
  all(): LabEvent[] {
    return this.since(Number.NEGATIVE_INFINITY);
  }

  /** The events held stamped at or after `t` (ms epoch), in arrival order. */
  since(t: number): LabEvent[] {
    const a = [...this.evidence];
    const b = [...this.routine];
    const out: LabEvent[] = [];
    for (let i = 0, j = 0; i < a.length || j < b.length; ) {
      const ea = a[i];
      const eb = b[j];
      const e = eb === undefined || (ea !== undefined && ea.seq < eb.seq) ? a[i++] : b[j++];
      if (e && e.event.time >= t) out.push(e.event);
    }
    return out;
  }
}
