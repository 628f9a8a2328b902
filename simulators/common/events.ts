import { EventEmitter } from 'node:events';

/** The shape every simulator event takes on the lab timeline. */
export interface LabEvent<T extends string = string, D = unknown> {
  /** Milliseconds since the Unix epoch, with sub-millisecond precision. */
  time: number;
  /** The simulator (or harness part) that saw it, by its lab name. */
  source: string;
  type: T;
  data: D;
}

export type EventMap = Record<string, unknown>;

/** performance.timeOrigin + now(): epoch time with sub-millisecond resolution, monotonic within a process. */
export function preciseNow(): number {
  return performance.timeOrigin + performance.now();
}

/**
 * A typed emitter. `emitEvent('connect-denied', {...})` emits the typed event under its own name, and the
 * same event wrapped as a `LabEvent` under `'event'`, so the harness can record every simulator's events
 * on one timeline without knowing their types.
 */
export class SimulatorEvents<M extends EventMap> extends EventEmitter {
  constructor(readonly source: string) {
    super();
    // Many scenario parts may listen; the default of 10 warns spuriously.
    this.setMaxListeners(100);
  }

  emitEvent<K extends keyof M & string>(type: K, data: M[K]): void {
    const event: LabEvent<K, M[K]> = { time: preciseNow(), source: this.source, type, data };
    this.emit(type, data);
    this.emit('event', event);
  }

  onEvent<K extends keyof M & string>(type: K, listener: (data: M[K]) => void): this {
    return this.on(type, listener as (...args: unknown[]) => void);
  }

  onceEvent<K extends keyof M & string>(type: K, listener: (data: M[K]) => void): this {
    return this.once(type, listener as (...args: unknown[]) => void);
  }

  onAny(listener: (event: LabEvent) => void): this {
    return this.on('event', listener);
  }
}
