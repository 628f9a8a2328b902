import { readdirSync, readFileSync } from 'node:fs';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { schemaText } from '../../harness/cli/schema.js';
import { loadYamlScenario, ScenarioError } from '../../harness/scenario/load.js';

const good = `
name: demo
title: Demo
lab:
  simulators:
    - { name: api, type: https-server, host: api.example.com, port: 8443 }
client:
  type: command
  argv: [curl, '\${api.url}']
variants:
  - name: broken
    faults: [{ target: api, type: latency, latency: 1s }]
    expect: { result: fail, class: tcp.timeout, within: 10s }
  - name: fixed
    expect: pass
`;

function errorOf(text: string): ScenarioError {
  try {
    loadYamlScenario('demo.yaml', text);
  } catch (err) {
    if (err instanceof ScenarioError) return err;
    throw err;
  }
  throw new Error('expected the scenario to be rejected');
}

describe('scenario loading', () => {
  it('accepts a valid scenario and applies defaults and durations', () => {
    const s = loadYamlScenario('demo.yaml', good);
    expect(s.timeout).toBe(30_000);
    expect(s.backends).toEqual(['loopback']);
    const broken = s.variants[0]!;
    expect(broken.faults[0]).toMatchObject({
      target: 'api',
      type: 'latency',
      latency: 1000,
      stream: 'downstream',
    });
    expect(broken.expect).toMatchObject({ result: 'fail', class: 'tcp.timeout', within: 10_000 });
    expect(s.variants[1]!.expect).toEqual({ result: 'pass', labSaw: [], labNeverSaw: [] });
  });

  it('names the field path and the line of a bad field', () => {
    const err = errorOf(good.replace('port: 8443', "port: 'x'"));
    expect(err.code).toBe('E_SCENARIO');
    expect(err.issues[0]?.path).toBe('lab.simulators[0].port');
    expect(err.issues[0]?.line).toBe(6);
    expect(err.message).toContain('demo.yaml:6');
  });

  it('rejects an unknown failure class, naming it', () => {
    const err = errorOf(good.replace('class: tcp.timeout', 'class: tcp.slow'));
    expect(err.issues[0]?.path).toBe('variants[0].expect.class');
  });

  it('rejects unknown fields (typos) instead of ignoring them', () => {
    const err = errorOf(good.replace('title: Demo', 'title: Demo\ntitel: typo'));
    expect(err.message).toMatch(/titel/);
  });

  it('rejects a fail expectation without a class', () => {
    const err = errorOf(good.replace('class: tcp.timeout, ', ''));
    expect(err.issues[0]?.path).toBe('variants[0].expect.class');
  });

  it('checks references, fault targets, simulator types and options, and the broken/fixed pair', () => {
    expect(errorOf(good.replace("'${api.url}'", "'${apx.url}'")).issues[0]?.message).toMatch(
      /names no simulator/,
    );
    expect(errorOf(good.replace('target: api', 'target: nope')).issues[0]?.path).toBe(
      'variants[0].faults[0].target',
    );
    expect(errorOf(good.replace('type: https-server', 'type: htps-server')).issues[0]?.message).toMatch(
      /unknown simulator type htps-server/,
    );
    expect(
      errorOf(good.replace('port: 8443 }', 'port: 8443, options: { cert: stale } }')).issues[0]?.path,
    ).toBe('lab.simulators[0].options.cert');
    expect(errorOf(good.replace('- name: fixed', '- name: broken-two')).message).toMatch(
      /at least one fixed variant/,
    );
    expect(errorOf(good.replace('- name: fixed', '- name: working')).issues[0]?.path).toBe(
      'variants[1].name',
    );
  });

  it('reports YAML syntax errors with their line', () => {
    const err = errorOf(`${good}\n  - [unclosed`);
    expect(err.issues[0]?.path).toBe('(yaml)');
    expect(err.issues[0]?.line).toBeGreaterThan(1);
  });

  it('the published JSON Schema is the one generated from the model (run `npm run schema`)', () => {
    expect(readFileSync('scenarios/schema.json', 'utf8')).toBe(schemaText());
  });
});

describe('published JSON Schema', () => {
  it('accepts every catalogue scenario and rejects a wrong option, as a standard validator sees it', () => {
    const ajv = new Ajv2020({ strict: false, allErrors: true });
    const validate = ajv.compile(JSON.parse(readFileSync('scenarios/schema.json', 'utf8')));
    const files = readdirSync('scenarios').filter((f) => f.endsWith('.yaml'));
    expect(files.length).toBeGreaterThan(0);
    for (const f of files) {
      // The schema describes the data as fieldlab reads it: YAML `<<` merge keys applied (harness/scenario/load.ts).
      const data = parse(readFileSync(`scenarios/${f}`, 'utf8'), { merge: true });
      expect(validate(data), `${f}: ${JSON.stringify(validate.errors?.slice(0, 3))}`).toBe(true);
    }
    const bad = parse(good.replace('port: 8443 }', 'port: 8443, options: { cert: stale } }'));
    expect(validate(bad)).toBe(false);
  });
});
