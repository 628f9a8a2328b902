import { describe, expect, it } from 'vitest';
import { runPool } from '../../harness/runner/pool.js';
import { wireguardNames } from '../../harness/runner/run.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { within } from '../helpers/within.js';

/** A task the test ends by hand, recording when it started and whether it is running. */
function manual(name: string, keys: string[], log: string[]) {
  let end!: () => void;
  let markStarted!: () => void;
  const started = new Promise<void>((r) => {
    markStarted = r;
  });
  return {
    keys,
    started,
    end: () => end(),
    run: () =>
      new Promise<void>((resolve) => {
        log.push(`start ${name}`);
        end = () => {
          log.push(`end ${name}`);
          resolve();
        };
        markStarted();
      }),
  };
}

describe('runPool (variants in parallel, machine-wide names one at a time)', () => {
  it('runs `width` tasks at once, in order, and every task once', async () => {
    const log: string[] = [];
    const [a, b, c] = [manual('a', [], log), manual('b', [], log), manual('c', [], log)];
    const done = runPool([a, b, c], 2);
    await within(Promise.all([a.started, b.started]), 5_000, 'a and b to start');
    expect(log).toEqual(['start a', 'start b']);
    a.end();
    await within(c.started, 5_000, 'c to start once a ended');
    b.end();
    c.end();
    await within(done, 5_000, 'the pool to finish');
    expect(log).toEqual(['start a', 'start b', 'end a', 'start c', 'end b', 'end c']);
  });

  it('never runs two tasks holding one key at once: a free task after them runs meanwhile', async () => {
    const log: string[] = [];
    // Two netns labs naming wg-arc, then one naming none.
    const a = manual('a', ['wg-arc'], log);
    const b = manual('b', ['wg-arc'], log);
    const c = manual('c', [], log);
    const done = runPool([a, b, c], 2);
    await within(Promise.all([a.started, c.started]), 5_000, 'a and c to start');
    c.end();
    // c's end frees a worker, but b still waits for a: the only task left holds a held key.
    await new Promise<void>((r) => setImmediate(r));
    expect(log).toEqual(['start a', 'start c', 'end c']);
    a.end();
    await within(b.started, 5_000, 'b to start once a ended');
    b.end();
    await within(done, 5_000, 'the pool to finish');
    expect(log).toEqual(['start a', 'start c', 'end c', 'end a', 'start b', 'end b']);
  });

  it('starts no task once stopped', async () => {
    const log: string[] = [];
    let stop = false;
    const a = manual('a', [], log);
    const b = manual('b', [], log);
    const done = runPool([a, b], 1, () => stop);
    await within(a.started, 5_000, 'a to start');
    stop = true;
    a.end();
    await within(done, 5_000, 'the pool to finish');
    expect(log).toEqual(['start a', 'end a']);
  });
});

describe('wireguardNames (what netns variants hold while they run)', () => {
  it('names the interfaces a lab sets itself, the variant’s network patch applied; none for the rest', async () => {
    const { loaded, errors } = await loadScenarios([
      'scenarios/arc-allowedips.yaml',
      'scenarios/amqp-port-blocked.yaml',
    ]);
    expect(errors).toEqual([]);
    const arc = loaded.find((l) => l.scenario.name === 'arc-allowedips')?.scenario;
    const amqp = loaded.find((l) => l.scenario.name === 'amqp-port-blocked')?.scenario;
    if (!arc || !amqp) throw new Error('the catalogue lacks arc-allowedips or amqp-port-blocked');
    // The device's wg-arc in every variant (the fixed one patches it, keeping the name); Arc's own is unnamed.
    for (const v of arc.variants) expect(wireguardNames(arc, v)).toEqual(['wg-arc']);
    for (const v of amqp.variants) expect(wireguardNames(amqp, v)).toEqual([]);
  });
});
