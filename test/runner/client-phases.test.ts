import { describe, expect, it } from 'vitest';
import { clientPhases } from '../../harness/runner/run-variant.js';

/** A program's own timers move to count from its spawn, where lab phases count from. */
describe('clientPhases', () => {
  it("moves a command's phases by its start-up: the run's time beyond curl's own total", () => {
    const phases = clientPhases({
      phases: [
        { name: 'tcp', start: 0, end: 2 },
        { name: 'tls', start: 2 }, // never ended: curl gave up at its total
      ],
      durationMs: 5_200,
      ownTotalMs: 5_000,
      client: { argv: ['curl'] },
    });
    expect(phases).toEqual([
      { name: 'tcp', start: 200, end: 202, source: 'client' },
      { name: 'tls', start: 202, source: 'client' },
    ]);
  });

  it('without a total of its own, the last timer stands for it; an in-process probe is not moved', () => {
    const cmd = clientPhases({
      phases: [{ name: 'dns', start: 0, end: 10 }],
      durationMs: 60,
      client: { argv: ['x'] },
    });
    expect(cmd).toEqual([{ name: 'dns', start: 50, end: 60, source: 'client' }]);
    const probe = clientPhases({ phases: [{ name: 'dns', start: 0, end: 10 }], durationMs: 60 });
    expect(probe).toEqual([{ name: 'dns', start: 0, end: 10, source: 'client' }]);
  });
});
