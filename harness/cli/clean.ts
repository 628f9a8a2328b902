import { cleanAll } from '../backends/index.js';
import { stateDir } from '../lab/state.js';

export async function cleanCommand(flags: { force?: boolean }): Promise<void> {
  // Every backend removes what its dead labs left (records and address blocks first, then namespaces,
  // then containers and networks).
  const r = cleanAll({ force: flags.force === true });
  for (const line of r.removed) process.stdout.write(`${line}\n`);
  for (const id of r.skippedLive)
    process.stdout.write(`left running lab ${id} alone (its owner still runs; --force removes it)\n`);
  if (r.removed.length === 0) process.stdout.write(`nothing to clean in ${stateDir()}\n`);
}
