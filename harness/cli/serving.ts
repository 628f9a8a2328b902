import { writeFileSync } from 'node:fs';

/**
 * What `fieldlab serve` and `fieldlab serve-lab` share as long-running simulator processes: the JSON
 * lines they print, the ready line (also written to the file `fieldlab health` reads), and stopping once
 * on SIGINT/SIGTERM.
 */

/** Prints one JSON line on stdout. */
export function writeLine(o: unknown): void {
  process.stdout.write(`${JSON.stringify(o)}\n`);
}

/** Prints the ready line and writes it to `readyFile` (default env FIELDLAB_READY_FILE) when set. */
export function announceReady(ready: object, readyFile = process.env.FIELDLAB_READY_FILE): void {
  writeLine(ready);
  if (readyFile) writeFileSync(readyFile, `${JSON.stringify(ready)}\n`);
}

/** On SIGINT or SIGTERM: says so on stderr as `<who>: <signal>: stopping <what>`, stops once, exits 0. */
export function stopOnSignals(who: string, what: string, stop: () => Promise<unknown>): void {
  let stopping = false;
  const onSignal = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    process.stderr.write(`${who}: ${signal}: stopping ${what}\n`);
    await stop();
    process.exit(0);
  };
  process.once('SIGINT', () => void onSignal('SIGINT'));
  process.once('SIGTERM', () => void onSignal('SIGTERM'));
}
