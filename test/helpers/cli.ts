import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { execa, type ResultPromise } from 'execa';

export const BIN = join(process.cwd(), 'dist', 'harness', 'cli', 'bin.js');

export function assertBuilt(): void {
  if (!existsSync(BIN)) throw new Error(`${BIN} is missing: run \`npm run build\` first (\`npm test\` does)`);
}

/** Runs the built CLI to completion (bounded), never rejecting for a non-zero exit. */
export async function cli(
  args: string[],
  opts: { env?: Record<string, string>; timeoutMs?: number; cwd?: string } = {},
) {
  const r = await execa('node', [BIN, ...args], {
    reject: false,
    timeout: opts.timeoutMs ?? 60_000,
    env: { ...opts.env, FORCE_COLOR: '0' },
    cwd: opts.cwd ?? process.cwd(),
  });
  return { code: r.exitCode, stdout: r.stdout, stderr: r.stderr };
}

/** Starts the CLI in the background (for `up`). */
export function cliBackground(args: string[], env: Record<string, string>): ResultPromise {
  return execa('node', [BIN, ...args], { reject: false, env, buffer: true });
}
