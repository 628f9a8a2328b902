/**
 * fieldlab as a library: the same implementation the CLI uses.
 *
 *   import { startLab, runScenario, defineScenario } from 'fieldlab';
 *   const run = await runScenario('scenarios/proxy-auth.yaml', { only: ['fixed'] });
 *   const l = await startLab({ name: 'demo', simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com', options: {} }] });
 *   l.relay('api').addToxic({ type: 'latency', latency: 200 });
 *   ...
 *   await l.stop();
 */
import { FieldlabError } from '../simulators/common/errors.js';
import type { RunResult } from './runner/result.js';
import { runAll } from './runner/run.js';
import { type LoadedScenario, loadScenario, validateScenario } from './scenario/load.js';
import type { Backend, ScenarioInput } from './scenario/model.js';

export { FieldlabError, isFieldlabError } from '../simulators/common/errors.js';
export type { LabEvent } from '../simulators/common/events.js';
export {
  type AdapterContext,
  defineAdapter,
  listAdapters,
  peerOf,
  registerAdapter,
  type SimulatorAdapter,
  type StartedSimulator,
} from './adapters/index.js';
export { type Capability, checkCapability } from './capabilities.js';
export { Lab, type LabDefinition, startLab as lab, startLab } from './lab/lab.js';
export { FAILURE_CLASSES, type FailureClass, type Verdict } from './probe/classes.js';
export type { Phase, PhaseName } from './probe/phases.js';
export type { RunResult, VariantResult } from './runner/result.js';
export { defineScenario, type Scenario, type ScenarioInput, scenarioJsonSchema } from './scenario/model.js';

/**
 * Runs a scenario (a file path, or a scenario object) and resolves to the run's results; it does not
 * throw for a failed variant (look at `totals`), only for an invalid scenario.
 */
export async function runScenario(
  input: string | ScenarioInput,
  opts: { backend?: Backend; only?: string[]; concurrency?: number } = {},
): Promise<RunResult> {
  let loaded: LoadedScenario;
  if (typeof input === 'string') loaded = await loadScenario(input);
  else {
    if (input === null || typeof input !== 'object')
      throw new FieldlabError('E_SCENARIO', 'runScenario needs a file path or a scenario object');
    loaded = { file: '(inline)', scenario: validateScenario(input, '(inline)') };
  }
  const only = opts.only?.map((v) => (v.includes('/') ? v : `${loaded.scenario.name}/${v}`));
  return runAll([loaded], {
    backend: opts.backend ?? 'loopback',
    ...(only ? { only } : {}),
    ...(opts.concurrency ? { concurrency: opts.concurrency } : {}),
  });
}
