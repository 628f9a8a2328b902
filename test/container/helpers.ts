import { execFileSync } from 'node:child_process';
import { join } from 'node:path';
import { execa } from 'execa';

export const ROOT = join(import.meta.dirname, '..', '..');
export const IMAGE = process.env.FIELDLAB_IMAGE ?? 'fieldlab:local';

/** scripts/setup.sh builds the image; a developer who has not run it gets it built here (bounded). */
export async function ensureImage(): Promise<void> {
  if ((await execa('docker', ['image', 'inspect', IMAGE], { reject: false })).exitCode === 0) return;
  const base = await execa('bash', [join(ROOT, 'scripts/docker-base-image.sh')], { timeout: 600_000 });
  await execa('bash', [join(ROOT, 'scripts/docker-image.sh')], {
    timeout: 600_000,
    env: { BASE_IMAGE: String(base.stdout).trim(), FIELDLAB_IMAGE: IMAGE },
  });
}

export function docker(args: string[]): string {
  return execFileSync('docker', args, { encoding: 'utf8', timeout: 60_000 }).trim();
}

/** Containers and networks carrying a label (e.g. a lab owner's PID). */
export function labelled(label: string): { containers: string; networks: string } {
  return {
    containers: docker(['ps', '-a', '-q', '--filter', `label=${label}`]),
    networks: docker(['network', 'ls', '-q', '--filter', `label=${label}`]),
  };
}
