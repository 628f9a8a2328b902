import { readFileSync, statSync } from 'node:fs';
import { readdir } from 'node:fs/promises';
import { extname, join, relative, resolve } from 'node:path';
import { pathToFileURL } from 'node:url';
import { isMap, isSeq, LineCounter, parseDocument } from 'yaml';
import type { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { formatPath } from '../../simulators/common/options.js';
import { type Scenario, scenarioSchema } from './model.js';
import { checkSemantics } from './semantics.js';

/** A scenario with the file it came from. */
export interface LoadedScenario {
  file: string;
  scenario: Scenario;
}

/** One problem in a scenario file, located for a person: `file:line:col  path: message`. */
export interface ScenarioIssue {
  path: string;
  message: string;
  line?: number;
  col?: number;
}

export class ScenarioError extends FieldlabError {
  constructor(
    readonly file: string,
    readonly issues: ScenarioIssue[],
  ) {
    const first = issues[0];
    const loc = first?.line ? `${file}:${first.line}:${first.col ?? 1}` : file;
    const lines = issues.map((i) => `  ${i.line ? `line ${i.line}: ` : ''}${i.path}: ${i.message}`);
    super('E_SCENARIO', `invalid scenario ${loc}\n${lines.join('\n')}`, {
      where: loc,
      hint: 'fix the fields named above; the schema is scenarios/schema.json (editors with YAML language support use it)',
    });
  }
}

const SCENARIO_EXTS = new Set(['.yaml', '.yml', '.js', '.mjs']);

/** Finds scenario files under the given paths (files or directories), sorted. */
export async function findScenarioFiles(paths: string[]): Promise<string[]> {
  const out: string[] = [];
  for (const p of paths) {
    let st: ReturnType<typeof statSync>;
    try {
      st = statSync(p);
    } catch {
      throw new FieldlabError('E_NO_SUCH_PATH', `no such file or directory: ${p}`, {
        hint: 'give scenario files or directories, e.g. `fieldlab run scenarios/`',
      });
    }
    if (st.isFile()) out.push(resolve(p));
    else {
      for (const entry of await readdir(p, { withFileTypes: true, recursive: true })) {
        const full = join(entry.parentPath, entry.name);
        if (entry.isFile() && SCENARIO_EXTS.has(extname(entry.name)) && !entry.name.startsWith('_'))
          out.push(resolve(full));
      }
    }
  }
  return [...new Set(out)].sort();
}

type Locate = (path: readonly PropertyKey[]) => { line: number; col: number } | undefined;

/** Validates parsed data against any schema, with scenario-style errors (file, line, field path). */
export function validateWith<S extends z.ZodType>(
  schema: S,
  data: unknown,
  file: string,
  locate: Locate = () => undefined,
): z.output<S> {
  const result = schema.safeParse(data);
  if (!result.success) throw new ScenarioError(file, zodIssues(result.error, locate));
  return result.data;
}

/** Validates already-parsed scenario data; `locate` maps a field path to a line when the source is YAML. */
export function validateScenario(data: unknown, file: string, locate: Locate = () => undefined): Scenario {
  const scenario = validateWith(scenarioSchema, data, file, locate);
  const semantic = checkSemantics(scenario);
  if (semantic.length > 0) {
    throw new ScenarioError(
      file,
      semantic.map((s) => ({ path: formatPath(s.path), message: s.message, ...locate(s.path) })),
    );
  }
  return scenario;
}

function zodIssues(error: z.ZodError, locate: Locate): ScenarioIssue[] {
  return error.issues.slice(0, 8).map((i) => {
    // Unions report "invalid input"; the most useful detail is the deepest branch error.
    let issue: z.core.$ZodIssue = i;
    while (issue.code === 'invalid_union' && issue.errors.length > 0) {
      const branches = issue.errors.flat();
      const deepest = branches.sort((a, b) => b.path.length - a.path.length)[0];
      if (!deepest) break;
      issue = { ...deepest, path: [...issue.path, ...deepest.path] } as z.core.$ZodIssue;
    }
    return { path: formatPath(issue.path), message: issue.message, ...locate(issue.path) };
  });
}

/** Parses YAML keeping positions; returns the data and a locator from field paths to lines. */
export function parseYaml(file: string, text: string): { data: unknown; locate: Locate } {
  const lc = new LineCounter();
  // `<<` merge keys: variants often repeat a block with one field changed (YAML 1.1 style).
  const doc = parseDocument(text, { lineCounter: lc, prettyErrors: true, merge: true });
  if (doc.errors.length > 0) {
    throw new ScenarioError(
      file,
      doc.errors.map((e) => {
        const pos = e.linePos?.[0];
        return {
          path: '(yaml)',
          message: e.message.split('\n')[0] ?? e.message,
          ...(pos ? { line: pos.line, col: pos.col } : {}),
        };
      }),
    );
  }
  const locate = (path: readonly PropertyKey[]) => {
    // Walk the YAML AST as deep as the path goes; the deepest node found carries the position.
    let node: unknown = doc.contents;
    let found: { range?: [number, number, number] | null } | undefined;
    for (const seg of path) {
      if (isMap(node)) {
        const pair = node.items.find((p) => (p.key as { value?: unknown } | null)?.value === seg);
        if (!pair) break;
        found = (pair.key as { range?: [number, number, number] }) ?? found;
        node = pair.value;
      } else if (isSeq(node) && typeof seg === 'number') {
        node = node.items[seg];
        found = (node as { range?: [number, number, number] }) ?? found;
      } else break;
    }
    if (!found && node && typeof node === 'object') found = node as { range?: [number, number, number] };
    const offset = found?.range?.[0];
    return offset === undefined ? undefined : lc.linePos(offset);
  };
  let data: unknown;
  try {
    data = doc.toJS();
  } catch (err) {
    // Aliases resolve only here: a `<<: *name` whose anchor is missing or not a map.
    throw new ScenarioError(file, [
      {
        path: '(yaml)',
        message: `${(err as Error).message} (a \`<<: *anchor\` needs an \`&anchor\` on a map above it)`,
      },
    ]);
  }
  return { data, locate };
}

/** Parses and validates a YAML scenario file. */
export function loadYamlScenario(file: string, text = readFileSync(file, 'utf8')): Scenario {
  const { data, locate } = parseYaml(file, text);
  return validateScenario(data, file, locate);
}

/** Loads a TypeScript/JavaScript scenario module (its default export, or `scenario`). */
export async function loadModuleScenario(file: string): Promise<Scenario> {
  const mod = (await import(pathToFileURL(file).href)) as { default?: unknown; scenario?: unknown };
  return validateScenario(mod.default ?? mod.scenario, file);
}

export async function loadScenario(file: string): Promise<LoadedScenario> {
  const ext = extname(file);
  const scenario =
    ext === '.yaml' || ext === '.yml' ? loadYamlScenario(file) : await loadModuleScenario(file);
  return { file: relative(process.cwd(), file) || file, scenario };
}

/** Loads every scenario under `paths`; reports every broken file, not just the first. */
export async function loadScenarios(
  paths: string[],
): Promise<{ loaded: LoadedScenario[]; errors: FieldlabError[] }> {
  const files = await findScenarioFiles(paths);
  const loaded: LoadedScenario[] = [];
  const errors: FieldlabError[] = [];
  for (const f of files) {
    try {
      loaded.push(await loadScenario(f));
    } catch (err) {
      if (err instanceof FieldlabError) errors.push(err);
      else throw err;
    }
  }
  const seen = new Map<string, string>();
  for (const l of loaded) {
    const other = seen.get(l.scenario.name);
    if (other) {
      errors.push(
        new FieldlabError(
          'E_SCENARIO',
          `scenario name ${l.scenario.name} is used by ${other} and ${l.file}`,
          {
            hint: 'give each scenario a unique name',
          },
        ),
      );
    }
    seen.set(l.scenario.name, l.file);
  }
  return { loaded, errors };
}
