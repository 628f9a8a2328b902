/**
 * The time source of tunnel lifecycles (max lifetime, retention of closed tunnels, timestamps, SigV4
 * clock skew). The default reads the system clock and uses unref'd timers; tests inject a clock they
 * move by hand, so a 720-minute lifetime or a 3-hour retention takes no real time.
 */
export interface Clock {
  /** Milliseconds since the Unix epoch. */
  now(): number;
  /** Calls `fn` once after `ms`; returns a function that cancels it. Must not keep the process alive. */
  after(ms: number, fn: () => void): () => void;
}

/** The longest delay Node's setTimeout takes (a longer one fires at once). */
export const MAX_TIMER_MS = 2 ** 31 - 1;

export const systemClock: Clock = {
  now: () => Date.now(),
  after(ms, fn) {
    const timer = setTimeout(fn, Math.min(Math.max(0, ms), MAX_TIMER_MS));
    timer.unref();
    return () => clearTimeout(timer);
  },
};
