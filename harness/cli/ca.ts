import { copyFileSync } from 'node:fs';
import { FieldlabError } from '../../simulators/common/errors.js';
import { isAlive, readRecords } from '../lab/state.js';

export async function caCommand(flags: { lab?: string; out: string }): Promise<void> {
  const live = readRecords()
    .map((r) => r.record)
    .filter((r) => r !== undefined && isAlive(r.pid, r.pidStartTicks) && r.caBundle);
  const pick = flags.lab ? live.filter((r) => r?.labId === flags.lab) : live;
  if (pick.length === 0) {
    throw new FieldlabError('E_NO_LAB', flags.lab ? `no running lab ${flags.lab}` : 'no lab is running', {
      hint: 'start one with `fieldlab up LAB.yaml` in another terminal, then run `fieldlab ca` again',
    });
  }
  if (pick.length > 1) {
    throw new FieldlabError(
      'E_MANY_LABS',
      `${pick.length} labs are running: ${pick.map((r) => r?.labId).join(', ')}`,
      {
        hint: 'choose one with --lab ID',
      },
    );
  }
  const rec = pick[0]!;
  copyFileSync(rec.caBundle!, flags.out);
  process.stdout.write(
    `wrote ${flags.out} (root CA of lab ${rec.labId})\n` +
      'trust it: curl --cacert FILE | NODE_EXTRA_CA_CERTS=FILE | SSL_CERT_FILE=FILE | Debian: copy to /usr/local/share/ca-certificates/*.crt and run update-ca-certificates\n',
  );
}
