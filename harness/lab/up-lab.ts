import { readFileSync } from 'node:fs';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { applyFault } from '../faults/dns.js';
import { loadYamlScenario, parseYaml, validateWith } from '../scenario/load.js';
import { scenarioSchema } from '../scenario/model.js';
import { type Lab, startLab } from './lab.js';
import { applyVariantFaults, labFor } from './variant-lab.js';

/** A file that declares only a lab (no client, no variants), for `fieldlab up`. */
const labFileSchema = z
  .object({
    $schema: z.string().optional(),
    name: scenarioSchema.shape.name,
    title: z.string().optional(),
    lab: scenarioSchema.shape.lab,
  })
  .strict();

export interface UpFlags {
  variant?: string;
  json?: boolean;
  /** The lab timeline's bound (default DEFAULT_MAX_EVENTS in harness/lab/timeline.ts). */
  maxEvents?: number;
}

/** Reads a lab or scenario file (`fieldlab up`) and starts its lab on loopback, with the variant's options and faults. */
export async function startUpLab(file: string, flags: UpFlags): Promise<Lab> {
  let text: string;
  try {
    text = readFileSync(file, 'utf8');
  } catch {
    throw new FieldlabError('E_NO_SUCH_PATH', `cannot read ${file}`, {
      hint: 'give a lab or scenario .yaml file',
    });
  }
  const { data: raw, locate } = parseYaml(file, text);
  let name: string;
  let lab: z.output<typeof labFileSchema>['lab'];
  let variant: ReturnType<typeof loadYamlScenario>['variants'][number] | undefined;
  if (raw && typeof raw === 'object' && 'variants' in raw) {
    const s = loadYamlScenario(file, text);
    name = s.name;
    lab = s.lab;
    if (flags.variant) {
      variant = s.variants.find((v) => v.name === flags.variant);
      if (!variant) {
        throw new FieldlabError('E_BAD_FLAG', `${file} has no variant ${flags.variant}`, {
          hint: `variants: ${s.variants.map((v) => v.name).join(', ')}`,
        });
      }
    }
  } else {
    const parsed = validateWith(labFileSchema, raw, file, locate);
    name = parsed.name;
    lab = parsed.lab;
    if (flags.variant)
      throw new FieldlabError('E_BAD_FLAG', '--variant needs a scenario file (with variants)');
  }

  // Nobody reads a long-running lab's events here: the timeline's bound keeps its memory flat.
  // `fieldlab up` runs on loopback: the faults meant for it (their `backends:` filter) apply.
  const running = await startLab(
    labFor(
      { name, lab },
      variant,
      flags.maxEvents !== undefined ? { maxEvents: flags.maxEvents } : undefined,
    ),
  );
  try {
    applyVariantFaults(variant?.faults ?? [], running.network.backend, (target, spec) =>
      applyFault(running, target, spec),
    );
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}
