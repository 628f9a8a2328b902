import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { applyFault } from '../faults/dns.js';
import { cleanOwnSync } from '../lab/clean.js';
import { type Lab, startLab } from '../lab/lab.js';
import { loadYamlScenario, parseYaml, validateWith } from '../scenario/load.js';
import { scenarioSchema } from '../scenario/model.js';

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

export async function upCommand(file: string, flags: UpFlags): Promise<void> {
  const running = await startUpLab(file, flags);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal while the lab stops: remove it synchronously and exit now.
      process.stderr.write(`fieldlab: ${signal} again: removing lab ${running.id} now\n`);
      cleanOwnSync();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    process.stderr.write(`\nfieldlab: ${signal}: stopping lab ${running.id}\n`);
    await running.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const endpoints = [...running.simulators.entries()].flatMap(([simName, s]) =>
    s.endpoints.map((e) => ({
      simulator: simName,
      type: s.decl.type,
      endpoint: e.name,
      host: s.decl.host,
      address: e.host,
      port: e.port,
      url: e.url ?? '',
    })),
  );
  const values = clientValues(running);
  const info = {
    labId: running.id,
    dir: running.dir,
    hosts: Object.fromEntries(running.hosts),
    hostsFile: running.hostsFile,
    caBundle: running.pki.trust.bundlePath,
    env: running.trustEnv(),
    endpoints,
    values: Object.fromEntries(values.map((v) => [v.ref, v.value])),
  };
  writeFileSync(join(running.dir, 'endpoints.json'), `${JSON.stringify(info, null, 2)}\n`);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
  } else {
    const out = [`lab ${running.id} is up (Ctrl-C stops it and removes everything)`, '', 'endpoints:'];
    for (const e of endpoints)
      out.push(
        `  ${`${e.simulator}.${e.endpoint}`.padEnd(24)} ${`${e.address}:${e.port}`.padEnd(22)} ${e.url}`,
      );
    if (values.length > 0) {
      // What a scenario's client gets as `${hub.connectionString}` and the like: for your own device.
      out.push('', 'values for clients (what scenarios reference as ${simulator.value}):');
      const width = Math.min(40, Math.max(...values.map((v) => v.ref.length + 4)));
      for (const v of values) out.push(`  ${`\${${v.ref}}`.padEnd(width)} ${v.value}`);
    }
    out.push('', 'hosts:');
    for (const [h, a] of running.hosts) out.push(`  ${a.padEnd(16)} ${h}`);
    out.push('', 'environment for clients:');
    for (const [k, v] of Object.entries(running.trustEnv())) out.push(`  export ${k}=${v}`);
    const first = endpoints.find((e) => e.url.startsWith('https'));
    if (first)
      out.push(
        '',
        `try: curl --cacert ${info.caBundle} --connect-to ${first.host}:${first.port}:${first.address}:${first.port} ${first.url}`,
      );
    process.stdout.write(`${out.join('\n')}\n`);
  }
  // Stay up until a signal: the listening sockets keep the event loop alive.
}

/**
 * Each simulator's client values, as a scenario's client gets them (`${hub.connectionString}`,
 * `${dps.idScope}`, `${proxy.rootCa}`...): what a person needs to point their own device at the lab.
 */
export function clientValues(lab: Lab): Array<{ ref: string; value: string }> {
  const out: Array<{ ref: string; value: string }> = [];
  for (const [name, s] of lab.simulators) {
    for (const key of Object.keys(s.vars).sort()) {
      const ref = `${name}.${key}`;
      out.push({ ref, value: lab.interpolate(`\${${ref}}`, 'client') });
    }
  }
  return out;
}

/** Reads a lab or scenario file and starts its lab, with the variant's options and faults. */
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
  const running = await startLab({
    name,
    ...(flags.maxEvents !== undefined ? { timeline: { maxEvents: flags.maxEvents } } : {}),
    hosts: lab.hosts,
    simulators: lab.simulators.map((s) => ({
      ...s,
      options: { ...s.options, ...(variant?.simulators[s.name] ?? {}) },
    })),
  });
  try {
    for (const f of variant?.faults ?? []) {
      const { target, backends: _, ...spec } = f;
      applyFault(running, target, spec);
    }
  } catch (err) {
    await running.stop();
    throw err;
  }
  return running;
}
