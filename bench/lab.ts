/**
 * Lab benchmark (loopback backend): time from `startLab` to a ready lab, and the memory of an idle lab.
 *   - per simulator type: a lab with one simulator of that type (default options);
 *   - `hub+proxy+dns`: iot-hub, connect-proxy and geo-dns (target: ready in < 300 ms);
 *   - the largest catalogue lab (the scenario in scenarios/ with the most simulators, its lab as written);
 *   - the reference: an empty lab (its PKI and state files only), the fixed cost every lab pays.
 * Memory: RSS of a process holding the idle lab, minus the RSS of the same process before the lab
 * started (the reference: Node with fieldlab's modules loaded). Every lab runs in a child process of its
 * own (this module with `--lab-child`), so the figures are the lab's, not the load generator's.
 */
import { fork } from 'node:child_process';
import { once } from 'node:events';
import { readdirSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { LabDefinition } from '../harness/lab/lab.js';
import { type BenchReport, bounded, buildReport, type Limit, quick } from './lib.js';

/** What the parent asks a child for, and what it answers. */
interface ChildJob {
  defs: Record<string, LabDefinition>;
  rounds: number;
  /** Hold the last lab of each definition idle and report its memory. */
  memory: boolean;
}
interface ChildResult {
  ms: Record<string, number[]>;
  rssKiB: Record<string, number>;
  baseKiB: number;
  errors: Record<string, string>;
}

const TARGET_MS = 300;

/** The options a simulator type cannot start without (every other type starts with `{}`). */
const REQUIRED: Record<string, Record<string, unknown>> = { dps: { hub: 'hub' } };
/** Simulators a type needs beside it in its lab (DPS assigns devices to an IoT Hub of the lab). */
const NEEDS: Record<string, LabDefinition['simulators']> = {
  dps: [{ name: 'hub', type: 'iot-hub', host: 'hub.bench.example', options: {} }],
};

/** Child side: starts each definition `rounds` times (ready → stop), timing each start. */
async function childMain(): Promise<void> {
  const [job] = (await once(process, 'message')) as [ChildJob];
  const { startLab } = await import('../harness/lab/lab.js');
  const gc = (globalThis as { gc?: () => void }).gc;
  const settle = async () => {
    gc?.();
    await new Promise((r) => setTimeout(r, 200));
    gc?.();
  };
  // Warm-up: module loading and the first PKI are not what a lab's start-up is about.
  await (await startLab({ name: 'bench-warm', simulators: [] })).stop();
  await settle();
  const out: ChildResult = { ms: {}, rssKiB: {}, baseKiB: process.memoryUsage().rss / 1024, errors: {} };
  for (const [name, def] of Object.entries(job.defs)) {
    try {
      for (let r = 0; r < job.rounds; r++) {
        const t0 = performance.now();
        const lab = await startLab(def);
        out.ms[name] = [...(out.ms[name] ?? []), performance.now() - t0];
        if (job.memory && r === job.rounds - 1) {
          await settle();
          out.rssKiB[name] = process.memoryUsage().rss / 1024;
        }
        await lab.stop();
      }
    } catch (err) {
      out.errors[name] = (err as Error).message.split('\n')[0] ?? String(err);
    }
  }
  process.send?.(out);
}

/** Runs a job in a fresh child process (bounded). */
async function inChild(job: ChildJob): Promise<ChildResult> {
  const child = fork(fileURLToPath(import.meta.url), ['--lab-child'], {
    execArgv: ['--expose-gc'],
    stdio: ['ignore', 'ignore', 'inherit', 'ipc'],
  });
  try {
    child.send(job);
    const [res] = (await bounded(once(child, 'message'), 300_000, 'lab bench child')) as [ChildResult];
    return res;
  } finally {
    child.kill('SIGTERM');
  }
}

/** The lab of the catalogue scenario with the most simulators (ties: the first by file name). */
async function largestCatalogueLab(): Promise<{ name: string; def: LabDefinition } | undefined> {
  const { loadYamlScenario } = await import('../harness/scenario/load.js');
  // npm runs scripts from the package root, where the catalogue is.
  const dir = join(process.cwd(), 'scenarios');
  let best: { name: string; def: LabDefinition } | undefined;
  let bestCount = 0;
  let files: string[] = [];
  try {
    files = readdirSync(dir).filter((f) => f.endsWith('.yaml'));
  } catch {
    return undefined;
  }
  for (const f of files.sort()) {
    try {
      const s = loadYamlScenario(join(dir, f));
      if (s.lab.simulators.length > bestCount) {
        bestCount = s.lab.simulators.length;
        best = { name: s.name, def: { name: s.name, hosts: s.lab.hosts, simulators: s.lab.simulators } };
      }
    } catch {
      // A scenario that does not load is the catalogue's business, not this benchmark's.
    }
  }
  return best;
}

export async function run(): Promise<BenchReport> {
  const rounds = quick() ? 2 : 5;
  const notes: string[] = [];
  const { adapterTypes } = await import('../harness/adapters/index.js');
  const perType: Record<string, LabDefinition> = {};
  for (const type of adapterTypes()) {
    const needs = NEEDS[type] ?? [];
    perType[needs.length > 0 ? `${type} (+ ${needs.map((n) => n.type).join(', ')})` : type] = {
      name: `bench-${type}`,
      simulators: [
        ...needs,
        { name: 'sim', type, host: `${type}.bench.example`, options: REQUIRED[type] ?? {} },
      ],
    };
  }
  const hubProxyDns: LabDefinition = {
    name: 'bench-hub-proxy-dns',
    simulators: [
      { name: 'hub', type: 'iot-hub', host: 'hub.bench.example', options: { devices: [{ deviceId: 'd1' }] } },
      { name: 'proxy', type: 'connect-proxy', host: 'proxy.bench.example', options: {} },
      { name: 'dns', type: 'geo-dns', host: 'ns1.bench.example', options: {} },
    ],
  };
  const largest = await largestCatalogueLab();
  const labs: Record<string, LabDefinition> = {
    'empty lab': { name: 'bench-empty', simulators: [] },
    'hub+proxy+dns': hubProxyDns,
  };
  if (largest) labs[`catalogue: ${largest.name}`] = largest.def;
  else notes.push('no catalogue scenario loaded: the largest catalogue lab is not measured');

  const types = await inChild({ defs: perType, rounds, memory: false });
  const big = await inChild({ defs: labs, rounds, memory: true });
  for (const [n, e] of Object.entries({ ...types.errors, ...big.errors }))
    notes.push(`${n}: did not start: ${e}`);

  const startSamples: Record<string, number[]> = { ...big.ms };
  for (const [t, v] of Object.entries(types.ms)) startSamples[`type ${t}`] = v;
  const memSamples: Record<string, number[]> = {};
  for (const [n, kib] of Object.entries(big.rssKiB)) memSamples[n] = [(kib - big.baseKiB) / 1024];
  notes.push(
    `start-up: startLab() until ready (simulators listening, relays and names in place), ${rounds} starts each, after a warm-up lab`,
    `memory: RSS with the idle lab minus RSS before any lab (${(big.baseKiB / 1024).toFixed(0)} MiB: Node with fieldlab loaded), after GC`,
  );
  const limits: Limit[] = [{ metric: 'lab start-up', subject: 'hub+proxy+dns', max: TARGET_MS }];
  if (largest) limits.push({ metric: 'lab start-up', subject: `catalogue: ${largest.name}`, max: TARGET_MS });
  return buildReport(
    'lab',
    [
      { metric: 'lab start-up', unit: 'ms', better: 'lower', samples: startSamples },
      { metric: 'idle lab memory', unit: 'MiB', better: 'lower', samples: memSamples },
    ],
    [],
    notes,
    limits,
  );
}

if (process.argv.includes('--lab-child')) void childMain();
