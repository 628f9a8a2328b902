/**
 * Cycles between the top folders of harness/ in a module graph: a folder is the first path segment under
 * harness/ (harness/topology/netns/x.ts is in `topology`); a file right under harness/ is its own node.
 */

export interface ModuleImport {
  from: string;
  to: string;
}

export interface FolderCycle {
  /** The folders that reach each other (one strongly connected component), sorted. */
  folders: string[];
  /** Each folder-to-folder edge inside it, with the imports that make it (sorted). */
  edges: Array<{ from: string; to: string; imports: ModuleImport[] }>;
}

/** `harness/lab/lab.ts` → `lab`; `harness/vitest.ts` → `vitest.ts`; outside harness/ → undefined. */
export function harnessFolderOf(path: string): string | undefined {
  const m = /^harness\/([^/]+)/.exec(path);
  return m?.[1];
}

/** Every set of harness folders that import each other round a cycle, with the imports that close it. */
export function folderCycles(imports: readonly ModuleImport[]): FolderCycle[] {
  const edges = new Map<string, Map<string, ModuleImport[]>>();
  for (const i of imports) {
    const a = harnessFolderOf(i.from);
    const b = harnessFolderOf(i.to);
    if (!a || !b || a === b) continue;
    const out = edges.get(a) ?? new Map<string, ModuleImport[]>();
    edges.set(a, out);
    out.set(b, [...(out.get(b) ?? []), i]);
    if (!edges.has(b)) edges.set(b, new Map());
  }
  return stronglyConnected(edges)
    .filter((c) => c.length > 1)
    .map((component) => {
      const inside = new Set(component);
      const folders = [...component].sort();
      const cycleEdges = folders.flatMap((from) =>
        [...(edges.get(from) ?? [])]
          .filter(([to]) => inside.has(to))
          .sort(([x], [y]) => x.localeCompare(y))
          .map(([to, imps]) => ({
            from,
            to,
            imports: [...imps].sort((x, y) => `${x.from}${x.to}`.localeCompare(`${y.from}${y.to}`)),
          })),
      );
      return { folders, edges: cycleEdges };
    })
    .sort((x, y) => x.folders.join().localeCompare(y.folders.join()));
}

/** Tarjan's strongly connected components of a directed graph. */
function stronglyConnected(graph: ReadonlyMap<string, ReadonlyMap<string, unknown>>): string[][] {
  let next = 0;
  const index = new Map<string, number>();
  const low = new Map<string, number>();
  const stack: string[] = [];
  const onStack = new Set<string>();
  const out: string[][] = [];
  const visit = (v: string): void => {
    index.set(v, next);
    low.set(v, next);
    next++;
    stack.push(v);
    onStack.add(v);
    for (const w of (graph.get(v) ?? new Map()).keys()) {
      if (!index.has(w)) {
        visit(w);
        low.set(v, Math.min(low.get(v) ?? 0, low.get(w) ?? 0));
      } else if (onStack.has(w)) low.set(v, Math.min(low.get(v) ?? 0, index.get(w) ?? 0));
    }
    if (low.get(v) === index.get(v)) {
      const component: string[] = [];
      let w: string | undefined;
      do {
        w = stack.pop();
        if (w === undefined) break;
        onStack.delete(w);
        component.push(w);
      } while (w !== v);
      out.push(component);
    }
  };
  for (const v of [...graph.keys()].sort()) if (!index.has(v)) visit(v);
  return out;
}

/** The cycles as a report: each component's folders, then every edge inside it with its imports. */
export function describeCycles(cycles: readonly FolderCycle[], maxImports = 3): string {
  return cycles
    .map((c) => {
      const lines = c.edges.map((e) => {
        const shown = e.imports.slice(0, maxImports).map((i) => `${i.from} imports ${i.to}`);
        const more = e.imports.length > maxImports ? ` (+${e.imports.length - maxImports} more)` : '';
        return `    ${e.from} → ${e.to}: ${shown.join('; ')}${more}`;
      });
      return [`  ${c.folders.join(', ')} reach each other:`, ...lines].join('\n');
    })
    .join('\n');
}
