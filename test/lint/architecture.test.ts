import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { cruise, type ICruiseResult } from 'dependency-cruiser';
import extractDepcruiseOptions from 'dependency-cruiser/config-utl/extract-depcruise-options';
import extractTSConfig from 'dependency-cruiser/config-utl/extract-ts-config';
import ts from 'typescript';
import { beforeAll, describe, expect, it } from 'vitest';
import { describeCycles, folderCycles, type ModuleImport } from './folder-cycles.js';

/**
 * The project's architecture rules (DESIGN.md "Layout"; issue 14): no import cycle between the folders of
 * harness/, no harness import in simulators/, no `as unknown as` in harness/ or simulators/ code. The
 * module graph comes from dependency-cruiser with the project's .dependency-cruiser.cjs (what `npm run
 * lint` runs); the cast is found in the TypeScript syntax tree, so comments and strings do not count.
 */

let graph: ICruiseResult;
let imports: ModuleImport[];

beforeAll(async () => {
  const options = await extractDepcruiseOptions('./.dependency-cruiser.cjs');
  const result = await cruise(['harness', 'simulators'], options, undefined, {
    tsConfig: extractTSConfig('tsconfig.json'),
  });
  if (typeof result.output === 'string') throw new Error('dependency-cruiser gave no module graph');
  graph = result.output;
  imports = graph.modules.flatMap((m) =>
    m.dependencies
      .filter((d) => !d.coreModule && !d.couldNotResolve)
      .map((d) => ({ from: m.source, to: d.resolved })),
  );
}, 120_000);

describe('harness/ and simulators/ architecture', () => {
  it('reads the whole tree (a cruise that saw nothing would pass every rule)', () => {
    const sources = new Set(graph.modules.map((m) => m.source));
    expect(sources).toContain('harness/adapters/index.ts');
    expect(sources).toContain('simulators/common/errors.ts');
    expect(imports.length).toBeGreaterThan(500);
  });

  it('has no import cycle between the folders of harness/', () => {
    const cycles = folderCycles(imports);
    expect(
      cycles.map((c) => c.folders.join(' ⇄ ')),
      `import cycles between folders of harness/ (a folder is the first path segment under harness/); ` +
        `move the part both sides need down to where both can import it:\n${describeCycles(cycles)}\n`,
    ).toEqual([]);
  });

  it('imports no harness code from simulators/', () => {
    const bad = imports.filter((i) => i.from.startsWith('simulators/') && i.to.startsWith('harness/'));
    expect(bad, 'a simulator never imports harness code (DESIGN.md "Layout")').toEqual([]);
  });

  it("breaks none of .dependency-cruiser.cjs's rules", () => {
    const violations = graph.summary.violations.map((v) => `${v.rule.name}: ${v.from} → ${v.to}`);
    expect(violations).toEqual([]);
  });

  it('has no `as unknown as` in harness/ or simulators/ outside tests', () => {
    const found: string[] = [];
    for (const file of ['harness', 'simulators'].flatMap((d) => sourceFiles(d))) {
      const text = readFileSync(file, 'utf8');
      const sf = ts.createSourceFile(file, text, ts.ScriptTarget.Latest, true);
      const visit = (node: ts.Node): void => {
        if (isAsUnknownAs(node)) {
          const { line } = sf.getLineAndCharacterOfPosition(node.getStart(sf));
          found.push(`${file}:${line + 1}: ${node.getText(sf).slice(0, 100)}`);
        }
        ts.forEachChild(node, visit);
      };
      visit(sf);
    }
    expect(found, 'type the value instead of casting through unknown (STYLE/project rules)').toEqual([]);
  });
});

/** `x as unknown as T` (also with parentheses: `(x as unknown) as T`). */
function isAsUnknownAs(node: ts.Node): boolean {
  if (!ts.isAsExpression(node)) return false;
  let inner: ts.Expression = node.expression;
  while (ts.isParenthesizedExpression(inner)) inner = inner.expression;
  return ts.isAsExpression(inner) && inner.type.kind === ts.SyntaxKind.UnknownKeyword;
}

/** The .ts files under `dir` (not .d.ts, not tests). */
function sourceFiles(dir: string): string[] {
  return readdirSync(dir, { recursive: true, encoding: 'utf8' })
    .filter((f) => f.endsWith('.ts') && !f.endsWith('.d.ts') && !f.endsWith('.test.ts'))
    .map((f) => join(dir, f));
}
