import { describe, expect, it } from 'vitest';
import { checkLoad, scaledVus } from '../../harness/load/scenario-load.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadOf, type ScenarioInput, scenarioSchema } from '../../harness/scenario/model.js';
import { isFieldlabError } from '../../simulators/common/errors.js';

/** The `load:` field: validation, a variant's patch over the scenario's, and errors before any lab starts. */
const base: ScenarioInput = {
  name: 'load-model',
  title: 'load model',
  lab: { simulators: [{ name: 'hub', type: 'mqtt-broker', host: 'hub.iot.example.com' }] },
  load: {
    script: 'mqtt-fleet',
    vus: 10,
    duration: '5s',
    options: { url: 'mqtt://${hub.address}:${hub.port}', hub: 'hub' },
    thresholds: { reconnected: ['rate==1'] },
  },
  variants: [
    { name: 'broken', load: { vus: 20, options: { reconnect: 'fixed' } }, expect: 'pass' },
    { name: 'fixed', load: { thresholds: { reconnect_ms: ['p(95)<1000'] } }, expect: 'pass' },
  ],
};

function errorOf(f: () => unknown): unknown {
  try {
    f();
  } catch (e) {
    return e;
  }
  return undefined;
}

describe('scenario load', () => {
  it('a variant patches the scenario load: fields replace, options and thresholds merge', () => {
    const s = scenarioSchema.parse(base);
    const [broken, fixed] = s.variants;
    const b = loadOf(s, broken!)!;
    expect(b).toMatchObject({ driver: 'node', script: 'mqtt-fleet', vus: 20, duration: 5000, rampUp: 0 });
    expect(b.options).toEqual({ url: 'mqtt://${hub.address}:${hub.port}', hub: 'hub', reconnect: 'fixed' });
    expect(loadOf(s, fixed!)!.thresholds).toEqual({
      reconnected: ['rate==1'],
      reconnect_ms: ['p(95)<1000'],
    });
  });

  it('a scenario without a client needs a load for every variant', () => {
    const { load: _, ...noLoad } = base;
    // The first variant declares its own whole load (a script); the second has nothing to run.
    const own = { name: 'broken', load: { script: 'mqtt-fleet' }, expect: 'pass' };
    const r = scenarioSchema.safeParse({ ...noLoad, variants: [own, { name: 'fixed', expect: 'pass' }] });
    expect(r.success).toBe(false);
    expect(r.error?.issues.map((i) => i.path.join('.'))).toEqual(['variants.1']);
  });

  it('checkLoad names an unknown workload, a metric the workload lacks, a threshold k6 cannot parse', () => {
    const s = scenarioSchema.parse(base);
    const l = loadOf(s, s.variants[0]!)!;
    const codes = [
      errorOf(() => checkLoad({ ...l, script: 'nope' })),
      errorOf(() => checkLoad({ ...l, thresholds: { latency: ['p(95)<1'] } })),
      errorOf(() => checkLoad({ ...l, thresholds: { reconnected: ['p95<1'] } })),
    ].map((e) => (isFieldlabError(e) ? e.code : String(e)));
    expect(codes).toEqual(['E_BAD_LOAD', 'E_BAD_THRESHOLD', 'E_BAD_THRESHOLD']);
    expect(checkLoad(l)).toBeUndefined();
  });

  it('a workload named after an Object.prototype member is unknown, not inherited', () => {
    const s = scenarioSchema.parse(base);
    const l = loadOf(s, s.variants[0]!)!;
    for (const script of ['constructor', 'toString', '__proto__']) {
      const e = errorOf(() => checkLoad({ ...l, script }));
      expect(isFieldlabError(e) ? e.code : String(e), script).toBe('E_BAD_LOAD');
    }
  });

  it('a bad load errors the variant with its code, before a lab starts', async () => {
    const s = scenarioSchema.parse({ ...base, load: { ...base.load, script: 'no-such-workload' } });
    const r = await runVariant({ file: 'x.yaml', scenario: s }, s.variants[0]!, { backend: 'loopback' });
    expect(r.status).toBe('errored');
    expect(r.error?.code).toBe('E_BAD_LOAD');
    expect(r.events).toEqual([]);
  });

  it('FIELDLAB_LOAD_SCALE scales VUs (at least 1) and rejects nonsense', () => {
    expect(scaledVus(1000, {})).toBe(1000);
    expect(scaledVus(1000, { FIELDLAB_LOAD_SCALE: '0.2' })).toBe(200);
    expect(scaledVus(3, { FIELDLAB_LOAD_SCALE: '0.01' })).toBe(1);
    expect(isFieldlabError(errorOf(() => scaledVus(10, { FIELDLAB_LOAD_SCALE: '-1' })))).toBe(true);
  });
});

describe('load references', () => {
  it('a load option naming no simulator is a scenario error, located at the option', async () => {
    const { checkSemantics } = await import('../../harness/scenario/semantics.js');
    const s = scenarioSchema.parse({
      ...base,
      variants: [
        { name: 'broken', load: { options: { url: 'mqtt://${nohub.address}:1883' } }, expect: 'pass' },
        { name: 'fixed', expect: 'pass' },
      ],
    });
    const issues = checkSemantics(s);
    expect(issues.map((i) => i.path.join('.'))).toEqual(['variants.0.load.options.url']);
    expect(issues[0]?.message).toMatch(/nohub/);
  });
});

describe('load options', () => {
  it('a workload missing a required option errors the variant with E_BAD_LOAD, naming it', async () => {
    const s = scenarioSchema.parse({
      ...base,
      load: { ...base.load, options: { hub: 'hub' }, duration: '1s' },
    });
    const r = await runVariant({ file: 'x.yaml', scenario: s }, s.variants[1]!, { backend: 'loopback' });
    expect(r.status).toBe('errored');
    expect(r.error?.code).toBe('E_BAD_LOAD');
    expect(r.error?.message).toBe('mqtt-fleet needs the load option url');
  });
});
