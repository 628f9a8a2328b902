import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { authorityOf, start as startPki } from '../../simulators/pki/index.js';

/**
 * `fieldlab pki --dir D --server a.example.com,alias ...`: a lab CA and server leaves as files, for
 * simulators in containers (compose's `pki` service writes them to the shared volume; `fieldlab serve`
 * reads them with `{"$file": ...}`). Existing files are kept, so a restart keeps the same CA.
 */
export async function pkiCommand(flags: { dir: string; server: string[] }): Promise<void> {
  const leaves = flags.server.map((s) =>
    s
      .split(',')
      .map((n) => n.trim())
      .filter(Boolean),
  );
  for (const [i, names] of leaves.entries()) {
    if (names.length === 0) throw new FieldlabError('E_BAD_FLAG', `--server #${i + 1} names nothing`);
    if (!/^[A-Za-z0-9.-]+$/.test(names[0]!))
      throw new FieldlabError('E_BAD_FLAG', `--server ${names[0]}: the first name must be a host name`);
  }
  const caFile = join(flags.dir, 'ca.pem');
  const missing = leaves.filter((n) => !existsSync(join(flags.dir, `${n[0]}.pem`)));
  if (existsSync(caFile) && missing.length === 0) {
    process.stdout.write(`fieldlab pki: ${flags.dir} has the CA and ${leaves.length} certificate(s)\n`);
    return;
  }
  if (existsSync(caFile)) {
    throw new FieldlabError(
      'E_PKI_EXISTS',
      `${caFile} exists but ${missing.map((n) => n[0]).join(', ')} not`,
      {
        hint: 'the CA key is not kept: empty the directory (docker compose down -v) to make all anew',
      },
    );
  }
  mkdirSync(flags.dir, { recursive: true });
  const pki = await startPki({ name: 'pki' });
  try {
    for (const names of leaves) {
      const leaf = await pki.issueServer(names);
      writeFileSync(join(flags.dir, `${names[0]}.pem`), leaf.chainPem);
      writeFileSync(join(flags.dir, `${names[0]}-key.pem`), leaf.keyPem, { mode: 0o600 });
    }
    // The CA itself, for simulators started with `serve-lab` (they issue their own leaves under it). A
    // throwaway lab CA, readable to the image's user only.
    writeFileSync(join(flags.dir, 'authority.json'), JSON.stringify(authorityOf(pki)), { mode: 0o600 });
    // Last: its presence says the directory is complete.
    writeFileSync(caFile, pki.root.certPem);
  } finally {
    await pki.stop();
  }
  process.stdout.write(`fieldlab pki: wrote ${caFile} and ${leaves.length} certificate(s) in ${flags.dir}\n`);
}
