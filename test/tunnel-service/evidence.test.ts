import { describe, expect, it } from 'vitest';
import type { Verdict } from '../../harness/probe/classes.js';
import { explain } from '../../harness/probe/evidence.js';
import { classifyText } from '../../harness/probe/text.js';
import type { LabEvent } from '../../simulators/common/events.js';

/**
 * A tunnel verdict comes from the real application's failure (ssh through the source localproxy) and the
 * tunnel service's own `token-rejected` event, never from words our localproxy printed.
 */
const rejected = (reason: string, mode = 'source'): LabEvent => ({
  time: 0,
  source: 'tunnels',
  type: 'token-rejected',
  data: { tunnelId: '3b4e0e45-eb34-4f03-8cc6-4a27ea8697bc', mode, reason, status: 403, code: 'E_TUNNEL_X' },
});
/** What ssh says when the source localproxy ended (nothing listens on its port). */
const SSH_REFUSED = 'ssh: connect to host 127.0.0.1 port 40123: Connection refused';
const sshFailed = (text: string): Verdict => ({
  ok: false,
  class: classifyText(text) ?? 'client.error',
  detail: `exit code 1: tunnel-notify: E_SSH: ssh exited 255: ${text}`,
});

describe('tunnel evidence', () => {
  it("narrows ssh's refused connection to tunnel.closed when the service refused a closed tunnel's token", () => {
    const out = explain(sshFailed(SSH_REFUSED), [rejected('closed')]);
    expect(out.verdict).toMatchObject({ ok: false, class: 'tunnel.closed' });
    expect(out.explanation.join('\n')).toMatch(
      /refused the source token of tunnel 3b4e0e45-.*: the tunnel is closed/,
    );
    expect(out.explanation.join('\n')).toMatch(/the client saw tcp\.refused/);
  });

  it('narrows it to tunnel.token-used when the service refused a used token', () => {
    const out = explain(sshFailed(SSH_REFUSED), [rejected('used')]);
    expect(out.verdict).toMatchObject({ ok: false, class: 'tunnel.token-used' });
  });

  it('also when ssh saw the connection reset or closed before its banner', () => {
    expect(explain(sshFailed('Connection reset by peer'), [rejected('closed')]).verdict).toMatchObject({
      class: 'tunnel.closed',
    });
    expect(
      explain(sshFailed('kex_exchange_identification: Connection closed by remote host'), [
        rejected('closed'),
      ]).verdict,
    ).toMatchObject({ class: 'tunnel.closed' });
  });

  it("leaves ssh's own class when the service refused nothing (or refused a rotated token only)", () => {
    expect(explain(sshFailed(SSH_REFUSED), []).verdict).toMatchObject({ class: 'tcp.refused' });
    expect(explain(sshFailed(SSH_REFUSED), [rejected('revoked', 'destination')]).verdict).toMatchObject({
      class: 'tcp.refused',
    });
  });

  it("takes no tunnel class from our localproxy's words", () => {
    expect(classifyText('localproxy: E_TUNNEL_TOKEN_USED: likely cause: tunnel.token-used')).toBeUndefined();
  });
});
