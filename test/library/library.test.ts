import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { defineScenario, FieldlabError, lab, listAdapters, runScenario } from '../../harness/index.js';
import { missing } from '../helpers/capability.js';

let state: string;
beforeAll(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-lib-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterAll(() => {
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

describe('fieldlab as a library', () => {
  it('starts a lab with the same API the CLI uses', async () => {
    const l = await lab({
      name: 'lib',
      simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com', options: {} }],
    });
    try {
      expect(l.sim('api').endpoints[0]?.url).toMatch(/^https:\/\/api\.example\.com:\d+\/$/);
      expect(listAdapters().map((a) => a.type)).toContain('https-server');
    } finally {
      await l.stop();
    }
  });

  it('rejects an invalid inline scenario with E_SCENARIO naming the field', async () => {
    const bad = defineScenario({
      name: 'Bad Name',
      title: 't',
      lab: { simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com' }] },
      client: { type: 'probe', url: '${api.url}' },
      variants: [
        { name: 'broken', expect: 'pass' },
        { name: 'fixed', expect: 'pass' },
      ],
    });
    const err = await runScenario(bad).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FieldlabError);
    expect((err as FieldlabError).code).toBe('E_SCENARIO');
    expect((err as FieldlabError).message).toContain('name');
  });

  it('runs an inline TypeScript scenario with the built-in probe client', async () => {
    const run = await runScenario(
      defineScenario({
        name: 'inline',
        title: 'Inline probe scenario',
        lab: { simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com' }] },
        client: { type: 'probe', url: '${api.url}', timeout: '5s' },
        variants: [
          {
            name: 'broken-untrusted',
            client: { trust: 'system' },
            expect: { result: 'fail', class: 'tls.untrusted-root' },
          },
          { name: 'fixed', expect: { result: 'pass', within: '5s' } },
        ],
      }),
    );
    expect(run.results.map((r) => [r.variant, r.status])).toEqual([
      ['broken-untrusted', 'passed'],
      ['fixed', 'passed'],
    ]);
    const fixed = run.results[1]!;
    expect(fixed.phases.map((p) => p.name)).toEqual(expect.arrayContaining(['tcp', 'tls', 'first-byte']));
  });

  it.skipIf(missing('cmd:curl', 'userns'))('runs one variant of a scenario file', async () => {
    const run = await runScenario('scenarios/https-endpoint.yaml', { only: ['fixed'] });
    expect(run.results).toHaveLength(1);
    expect(run.totals.passed).toBe(1);
  });
});
