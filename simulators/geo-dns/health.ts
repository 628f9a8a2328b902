import { connect } from 'node:net';
import type { StoredRecord } from './zone.js';

/** Result of one TCP health check: connected, or why not. */
function tcpCheck(host: string, port: number, timeoutMs: number): Promise<string | undefined> {
  return new Promise((resolve) => {
    const s = connect({ host, port });
    const timer = setTimeout(() => finish('timeout'), timeoutMs);
    function finish(err: string | undefined): void {
      clearTimeout(timer);
      s.destroy();
      resolve(err);
    }
    s.once('connect', () => finish(undefined));
    s.once('error', (e: NodeJS.ErrnoException) => finish(e.code ?? e.message));
  });
}

/**
 * Route 53 health checks as the lab runs them: a TCP connect to host:port every interval, per record
 * with a `healthCheck`; `set(id, healthy)` overrides a record's health from the test or harness.
 */
export class HealthChecks {
  private readonly state = new Map<string, boolean>();
  private readonly overrides = new Map<string, boolean>();
  private readonly timers = new Map<string, NodeJS.Timeout>();
  private stopped = false;

  constructor(private readonly onChange: (id: string, healthy: boolean, why: string) => void) {}

  /** Whether a record counts as healthy: override, else its last check, else healthy (no check). */
  healthy(rec: StoredRecord): boolean {
    return this.overrides.get(rec.id) ?? this.state.get(rec.id) ?? true;
  }

  set(id: string, healthy: boolean | undefined): void {
    if (healthy === undefined) this.overrides.delete(id);
    else this.overrides.set(id, healthy);
    this.onChange(
      id,
      healthy ?? this.state.get(id) ?? true,
      healthy === undefined ? 'override cleared' : 'set',
    );
  }

  /** Starts checking the records that have a health check; resolves after each one's first check. */
  async watch(records: readonly StoredRecord[]): Promise<void> {
    const firsts: Promise<void>[] = [];
    for (const rec of records) {
      const hc = rec.healthCheck;
      if (!hc || this.timers.has(rec.id)) continue;
      const run = async (): Promise<void> => {
        const err = await tcpCheck(hc.host, hc.port, hc.timeout);
        if (this.stopped) return;
        const ok = err === undefined;
        if (this.state.get(rec.id) !== ok) {
          this.state.set(rec.id, ok);
          this.onChange(rec.id, this.healthy(rec), ok ? `tcp ${hc.host}:${hc.port} connected` : `tcp ${err}`);
        }
      };
      const timer = setInterval(() => void run(), hc.interval);
      timer.unref();
      this.timers.set(rec.id, timer);
      firsts.push(run());
    }
    await Promise.all(firsts);
  }

  stop(): void {
    this.stopped = true;
    for (const t of this.timers.values()) clearInterval(t);
    this.timers.clear();
  }
}
