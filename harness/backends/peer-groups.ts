import { adapterFor } from '../adapters/index.js';
import type { LabSimulator } from '../lab/lab.js';

/**
 * The lab simulators `decl` names as peers (their adapter's `peers`): names that are no simulator of the
 * lab are left to the adapter to refuse.
 */
export function peersOf(decl: LabSimulator, declared: ReadonlySet<string>): string[] {
  const named = adapterFor(decl.type)?.peers(decl.options ?? {}) ?? [];
  return named.filter((n) => declared.has(n) && n !== decl.name);
}

/**
 * The lab's simulators in groups that must share a process: each simulator with its peers, and with
 * whatever else `together` pairs it with (transitively), in declaration order; every other simulator alone.
 */
export function groupSimulators(
  simulators: readonly LabSimulator[],
  together: (s: LabSimulator) => Iterable<string> = () => [],
): LabSimulator[][] {
  const declared = new Set(simulators.map((s) => s.name));
  const parent = new Map<string, string>(simulators.map((s) => [s.name, s.name]));
  const root = (n: string): string => {
    let r = n;
    while (parent.get(r) !== r) r = parent.get(r) ?? r;
    return r;
  };
  for (const s of simulators) {
    for (const p of [...peersOf(s, declared), ...together(s)]) parent.set(root(s.name), root(p));
  }
  const out = new Map<string, LabSimulator[]>();
  for (const s of simulators) {
    const r = root(s.name);
    out.set(r, [...(out.get(r) ?? []), s]);
  }
  return [...out.values()];
}
