import { lookup } from 'node:dns';
import type { LookupFunction } from 'node:net';
import { describe, expect, it } from 'vitest';
import { runNodeFunction } from '../../harness/clients/node-fn.js';

const ctx = { lookup: lookup as LookupFunction, ca: ['PEM'], env: { A: '1' } };

describe('runNodeFunction', () => {
  it('returns the value and the phases the client marked, in order and monotonic', async () => {
    const r = await runNodeFunction(
      async (c) => {
        c.mark('dns', 'start');
        await new Promise((res) => setImmediate(res));
        c.mark('dns', 'end');
        c.mark('tcp', 'start');
        c.mark('tcp', 'end');
        c.mark('tls', 'start');
        return { env: c.env.A, ca: c.ca.length, aborted: c.signal.aborted };
      },
      { timeoutMs: 2000, ctx },
    );
    expect(r.ok).toBe(true);
    expect(r.timedOut).toBe(false);
    expect(r.value).toEqual({ env: '1', ca: 1, aborted: false });
    expect(r.phases.map((p) => p.name)).toEqual(['dns', 'tcp', 'tls']);
    expect(r.phases[2]!.end).toBeUndefined();
    expect(r.phases[0]!.end!).toBeGreaterThanOrEqual(r.phases[0]!.start);
    expect(r.phases[1]!.start).toBeGreaterThanOrEqual(r.phases[0]!.end!);
  });

  it('returns the error a client throws', async () => {
    const boom = Object.assign(new Error('refused'), { code: 'ECONNREFUSED' });
    const r = await runNodeFunction(
      async () => {
        throw boom;
      },
      { timeoutMs: 2000, ctx },
    );
    expect(r.ok).toBe(false);
    expect(r.error).toBe(boom);
    expect(r.timedOut).toBe(false);
  });

  it('aborts the signal and resolves at the deadline when the client hangs', async () => {
    let sawAbort: unknown;
    const r = await runNodeFunction(
      (c) =>
        new Promise((_res, rej) => {
          c.signal.addEventListener('abort', () => {
            sawAbort = c.signal.reason;
            rej(c.signal.reason);
          });
        }),
      { timeoutMs: 150, ctx },
    );
    expect(r.ok).toBe(false);
    expect(r.timedOut).toBe(true);
    expect(r.durationMs).toBeGreaterThanOrEqual(140);
    expect(r.durationMs).toBeLessThan(2000);
    expect((sawAbort as Error).name).toBe('TimeoutError');
  });
});
