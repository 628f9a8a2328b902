import { z } from 'zod';
import { sshdOptionsSchema, start as startSshd } from '../../simulators/sshd/index.js';
import { defineAdapter, servedBy } from './adapter.js';

export const sshd = defineAdapter({
  type: 'sshd',
  summary: "a real OpenSSH server (Debian's sshd) with throwaway keys, e.g. behind a secure tunnel",
  options: z.object({ authorizedKeys: z.array(z.string()).default([]) }).strict(),
  async start(ctx, o) {
    const handle = await startSshd({
      name: ctx.name,
      host: ctx.address,
      authorizedKeys: o.authorizedKeys,
      dir: ctx.labDir,
    });
    ctx.trackProcess(handle.pid, `sshd for ${ctx.name}`);
    return { handle, vars: { key: handle.clientKeyPath, user: handle.user } };
  },
  serve: servedBy(sshdOptionsSchema, 'sshd', startSshd),
});
