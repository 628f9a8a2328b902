import { clean } from '../lab/clean.js';
import { stateDir } from '../lab/state.js';

export async function cleanCommand(flags: { force?: boolean }): Promise<void> {
  const r = clean({ force: flags.force === true });
  for (const l of r.labs) {
    const killed = l.killed.length > 0 ? `, ended processes ${l.killed.join(', ')}` : '';
    process.stdout.write(`removed lab ${l.labId} (${l.reason}${killed})\n`);
  }
  for (const b of r.blocks) process.stdout.write(`released address block ${b}.0/24\n`);
  for (const n of r.netns) {
    const killed = n.killed.length > 0 ? `, ended processes ${n.killed.join(', ')}` : '';
    process.stdout.write(
      `removed network namespaces of lab ${n.labId}: ${n.namespaces.join(', ')}${killed}\n`,
    );
  }
  if (r.containers.length > 0) process.stdout.write(`removed containers ${r.containers.join(', ')}\n`);
  if (r.networks.length > 0) process.stdout.write(`removed networks ${r.networks.join(', ')}\n`);
  for (const id of r.skippedLive)
    process.stdout.write(`left running lab ${id} alone (its owner still runs; --force removes it)\n`);
  const removed = r.labs.length + r.blocks.length + r.netns.length + r.containers.length + r.networks.length;
  if (removed === 0) process.stdout.write(`nothing to clean in ${stateDir()}\n`);
}
