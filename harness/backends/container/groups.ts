import type { LabSimulator } from '../../lab/lab.js';
import { peersOf } from '../netns/peers.js';

/**
 * The lab's simulators by container, in declaration order: simulators that reach each other's handles
 * (`peer()`: a DPS's hub, a tunnel service's notify broker; see netns/peers.ts) must share a process,
 * and simulators on one lab host share its one address, so each group runs in one container that
 * answers to all of its members' lab host names. Every other simulator has a container of its own.
 */
export function containerGroups(simulators: readonly LabSimulator[]): LabSimulator[][] {
  const declared = new Set(simulators.map((s) => s.name));
  const parent = new Map<string, string>(simulators.map((s) => [s.name, s.name]));
  const root = (n: string): string => {
    let r = n;
    while (parent.get(r) !== r) r = parent.get(r) ?? r;
    return r;
  };
  const join = (a: string, b: string) => parent.set(root(a), root(b));
  const byHost = new Map<string, string>();
  for (const s of simulators) {
    for (const p of peersOf(s, declared)) join(s.name, p);
    const mate = byHost.get(s.host);
    if (mate === undefined) byHost.set(s.host, s.name);
    else join(s.name, mate);
  }
  const out = new Map<string, LabSimulator[]>();
  for (const s of simulators) {
    const r = root(s.name);
    out.set(r, [...(out.get(r) ?? []), s]);
  }
  return [...out.values()];
}
