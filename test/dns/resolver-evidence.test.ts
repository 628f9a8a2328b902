import { describe, expect, it } from 'vitest';
import { explain } from '../../harness/probe/evidence.js';
import type { LabEvent } from '../../simulators/common/events.js';

/**
 * A failed lookup through the lab's resolver, as the lab saw it, against what clients say of it: curl's
 * "Could not resolve host" (dns.nxdomain), getaddrinfo's EAI_AGAIN (dns.timeout), azure-iot-device's
 * "Not authorized" (auth.rejected).
 */
let n = 0;
const ev = (source: string, type: string, data: object): LabEvent => ({
  time: 1_000 + n++,
  source,
  type,
  data,
});
const fault = (type: string) =>
  ev('dns', 'toxic-applied', {
    toxic: `${type}_proxy.corp.example.com`,
    type,
    query: 'proxy.corp.example.com A',
    client: '127.20.0.5:5353',
    transport: 'udp',
  });
const servfail = ev('resolver', 'answer', {
  client: '127.0.0.1',
  transport: 'udp',
  name: 'proxy.corp.example.com',
  type: 'A',
  rcode: 'SERVFAIL',
  source: 'none',
  answers: [],
  reason: 'upstream failed: 127.20.0.4:5300 answered SERVFAIL',
  ms: 3,
});
const timeout = ev('resolver', 'upstream-timeout', {
  server: '127.20.0.4:5300',
  name: 'proxy.corp.example.com',
  type: 'A',
  attempt: 1,
  ms: 4001,
});
const sdk = {
  ok: false as const,
  class: 'auth.rejected' as const,
  detail: 'UnauthorizedError: getaddrinfo EAI_AGAIN',
};

describe('resolver evidence', () => {
  it('narrows an SDK’s "Not authorized" to the SERVFAIL its resolver answered, with the fault that caused it', () => {
    const { verdict, explanation } = explain(sdk, [fault('servfail'), servfail]);
    expect(verdict).toMatchObject({ ok: false, class: 'dns.servfail' });
    expect(explanation).toEqual([
      'the DNS server dns applied its servfail fault (servfail_proxy.corp.example.com) to the query proxy.corp.example.com A from 127.20.0.5:5353 over udp',
      'the resolver resolver answered SERVFAIL to 127.0.0.1 for proxy.corp.example.com A after 3 ms (upstream failed: 127.20.0.4:5300 answered SERVFAIL)',
      "the client saw auth.rejected; the lab's evidence narrows it to dns.servfail",
    ]);
  });

  it('an upstream that never answered is the timeout behind curl’s "Could not resolve host"', () => {
    const { verdict } = explain({ ok: false, class: 'dns.nxdomain', detail: 'curl exit 6' }, [
      fault('drop'),
      timeout,
      servfail,
    ]);
    expect(verdict).toMatchObject({ class: 'dns.timeout' });
  });

  it('EAI_AGAIN with the upstream timeout stays dns.timeout (the lab confirms it)', () => {
    const { verdict } = explain({ ok: false, class: 'dns.timeout', detail: 'EAI_AGAIN' }, [
      timeout,
      servfail,
    ]);
    expect(verdict).toMatchObject({ class: 'dns.timeout' });
  });

  it('a real credential refusal is not narrowed by a failed lookup of another name', () => {
    const denied = ev('hub', 'auth-rejected', {
      deviceId: 'edge-1',
      transport: 'mqtt-ws',
      reason: 'bad key',
    });
    const { verdict } = explain(sdk, [servfail, denied]);
    expect(verdict).toMatchObject({ class: 'auth.rejected' });
  });
});
