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

/**
 * Who measured a phase: `client` (curl's timers, the probe, a Node client's marks) or `lab` (derived from
 * the simulators' and relays' events, see lab-phases.ts).
 */
export type PhaseSource = 'client' | 'lab';

/**
 * One phase: milliseconds from the client's start. `end` is absent when the phase never finished.
 * `source` absent means `client` (reports written before lab phases existed); `connection` names the TCP
 * connection the lab saw it on (`hub-relay#1`), absent for client phases.
 */
export interface Phase {
  name: PhaseName;
  start: number;
  end?: number;
  source?: PhaseSource;
  connection?: string;
}

export function phaseDuration(p: Phase): number | undefined {
  return p.end === undefined ? undefined : p.end - p.start;
}

/** The phase's source, `client` when it does not say. */
export function phaseSource(p: Phase): PhaseSource {
  return p.source ?? 'client';
}
