import { run } from './exec.js';

export interface NetemSupport {
  available: boolean;
  /** Why not (tc's message), empty when available. */
  reason: string;
}

let cached: Promise<NetemSupport> | undefined;

/**
 * Whether this kernel has sch_netem: tries `tc qdisc add dev lo root netem delay 1ms` in a scratch
 * namespace (`fl-netemprobe<pid>`, removed at once). Without netem, latency and loss come from the
 * userspace toxics (harness/faults); bandwidth still works with tbf.
 */
export function detectNetem(): Promise<NetemSupport> {
  cached ??= (async () => {
    const ns = `flprobe-netem-${process.pid}`; // not `fl-<lab>-*`: cleanNetns never takes it for a lab
    const add = await run(['ip', 'netns', 'add', ns]);
    if (add.exitCode !== 0)
      return { available: false, reason: `cannot create a namespace: ${add.stderr.trim()}` };
    try {
      const r = await run([
        'ip',
        'netns',
        'exec',
        ns,
        'tc',
        'qdisc',
        'add',
        'dev',
        'lo',
        'root',
        'netem',
        'delay',
        '1ms',
      ]);
      return r.exitCode === 0
        ? { available: true, reason: '' }
        : { available: false, reason: `tc netem: ${r.stderr.trim() || `exit ${r.exitCode}`} (no sch_netem)` };
    } finally {
      await run(['ip', 'netns', 'del', ns]);
    }
  })();
  return cached;
}
