/** Connection phases, in the order they happen. */
export const PHASE_NAMES = [
  'dns',
  'tcp',
  'proxy-connect',
  'tls',
  'app-handshake',
  'first-byte',
  'transfer',
] as const;
export type PhaseName = (typeof PHASE_NAMES)[number];

/** One phase: milliseconds from the client's start. `end` is absent when the phase never finished. */
export interface Phase {
  name: PhaseName;
  start: number;
  end?: number;
}

export function phaseDuration(p: Phase): number | undefined {
  return p.end === undefined ? undefined : p.end - p.start;
}
