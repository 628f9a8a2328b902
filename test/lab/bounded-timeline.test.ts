import { get } from 'node:https';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { startUpLab } from '../../harness/lab/up-lab.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { missing } from '../helpers/capability.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';

/**
 * issue 12 (1): a long-running lab kept every event of every simulator and relay. The timeline is now a
 * bounded ring (oldest routine events dropped first), `fieldlab up --max-events` sets its bound, and a
 * run's report says when events were dropped while keeping what its verdict reads.
 */
useTempStateDir('fl-bounded-');
const ROOT = join(import.meta.dirname, '..', '..');
const labs: Lab[] = [];
afterEach(async () => {
  await Promise.all(labs.splice(0).map((l) => l.stop()));
});

/** One HTTPS GET on a connection of its own (each adds relay and simulator events). */
function fetchOnce(lab: Lab, url: string): Promise<number> {
  return new Promise((resolve, reject) => {
    const req = get(
      url,
      { ca: lab.pki.root.certPem, lookup: lab.lookup, agent: false, timeout: 5000 },
      (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
  });
}

/** Resolves once the lab has seen `n` relay `closed` events in all (counted live, not from the timeline). */
function closedCount(lab: Lab, n: number): Promise<void> {
  let seen = 0;
  return new Promise((resolve) => {
    const off = lab.onEvent((e) => {
      if (e.source === 'api-relay' && e.type === 'closed' && ++seen >= n) {
        off();
        resolve();
      }
    });
  });
}

describe('bounded lab timeline', () => {
  it('a lab fed many events keeps its timeline at the bound, the evidence it was told to keep included', {
    timeout: 60_000,
  }, async () => {
    const lab = await startLab({
      name: 'bounded',
      simulators: [{ name: 'api', type: 'https-server', host: 'api.iot.example.com', port: 0 }],
      // The PKI's certificate for the simulator stands in for evidence: among the oldest events, kept
      // over the traffic.
      timeline: { maxEvents: 40, keep: (e) => e.source === 'pki' },
    });
    labs.push(lab);
    const kept = lab.events.filter((e) => e.source === 'pki');
    expect(kept.length).toBeGreaterThan(0);
    const url = lab.sim('api').endpoints[0]!.url!;
    const requests = 60;
    const closed = closedCount(lab, requests);
    for (let i = 0; i < requests; i++) expect(await fetchOnce(lab, url)).toBe(200);
    await within(closed, 10_000, 'every relay connection to close');

    expect(lab.timeline.size).toBe(40);
    expect(lab.events).toHaveLength(40);
    // At least a connection and a close per request on the relay alone went through it.
    expect(lab.timeline.dropped).toBeGreaterThan(2 * requests - 40);
    expect(lab.events.filter((e) => e.source === 'pki')).toEqual(kept);
    // The newest events are the ones held.
    expect(lab.events.at(-1)).toMatchObject({ source: 'api-relay', type: 'closed' });
  });

  it('`fieldlab up --max-events N` bounds the lab it starts', { timeout: 60_000 }, async () => {
    const lab = await startUpLab(join(ROOT, 'scenarios/https-endpoint.yaml'), { maxEvents: 25 });
    labs.push(lab);
    expect(lab.timeline.maxEvents).toBe(25);
    const url = lab.sim('api').endpoints[0]!.url!;
    const closed = closedCount(lab, 30);
    for (let i = 0; i < 30; i++) expect(await fetchOnce(lab, url)).toBe(200);
    await within(closed, 10_000, 'every relay connection to close');
    expect(lab.timeline.size).toBe(25);
    expect(lab.timeline.dropped).toBeGreaterThan(0);
  });

  it('without --max-events, `fieldlab up` still has a bound', async () => {
    const lab = await startUpLab(join(ROOT, 'scenarios/https-endpoint.yaml'), {});
    labs.push(lab);
    expect(lab.timeline.maxEvents).toBe(10_000);
  });
});

describe.skipIf(missing('cmd:curl'))('a scenario run on a small timeline', () => {
  it('keeps the events its verdict reads and says how many it dropped', { timeout: 60_000 }, async () => {
    const { loaded, errors } = await loadScenarios([join(ROOT, 'scenarios/proxy-auth.yaml')]);
    expect(errors).toEqual([]);
    const s = loaded[0]!;
    const v = s.scenario.variants.find((x) => x.name === 'broken-no-credentials')!;
    // Far too small for the run: the relays' and the hub's routine events overflow it; the proxy's
    // `auth-required` (an evidence rule and the variant's labSaw) must stay.
    const r = await runVariant(s, v, { backend: 'loopback', maxEvents: 2 });
    expect(r.status, r.explanation.join(' | ')).toBe('passed');
    expect(r.events.length).toBeLessThanOrEqual(2);
    expect(r.events.some((e) => e.source === 'proxy' && e.type === 'auth-required')).toBe(true);
    expect(r.droppedEvents).toEqual({ count: expect.any(Number), maxEvents: 2 });
    expect(r.droppedEvents!.count).toBeGreaterThan(0);
  });

  it('reports no dropped events when the timeline held them all', { timeout: 60_000 }, async () => {
    const { loaded } = await loadScenarios([join(ROOT, 'scenarios/proxy-auth.yaml')]);
    const s = loaded[0]!;
    const v = s.scenario.variants.find((x) => x.name === 'broken-no-credentials')!;
    const r = await runVariant(s, v, { backend: 'loopback' });
    expect(r.status, r.explanation.join(' | ')).toBe('passed');
    expect(r.droppedEvents).toBeUndefined();
    expect(r.events.length).toBeGreaterThan(2);
  });
});
