import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { applyFault, dnsFaultTarget } from '../../harness/faults/dns.js';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import type { LabEvent } from '../../simulators/common/events.js';
import type { GeoDnsHandle, GeoDnsOptions } from '../../simulators/geo-dns/index.js';
import { dig, seedOptions } from '../geo-dns/helpers.js';
import { missing } from '../helpers/capability.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';

/**
 * DNS faults in the `faults:` vocabulary (issue 18.3) against a lab's geo-dns, each checked with a real
 * dig: what the client sees, and the events the lab records (named as the relay's toxics are).
 */
useTempStateDir('fl-dnsfault-');

let lab: Lab;
const NAME = 'global.iot.example.com';
const EU = '+subnet=127.53.2.0/24';

beforeAll(async () => {
  const { zones, locations } = seedOptions();
  const options: GeoDnsOptions = { zones, locations };
  lab = await startLab({
    name: 'dnsfaults',
    hosts: [],
    simulators: [{ name: 'dns', type: 'geo-dns', host: 'ns1.iot.example.com', port: 0, options }],
  });
});
afterAll(async () => {
  await lab?.stop();
});

const target = () => dnsFaultTarget(lab, 'dns');
afterEach(() => {
  for (const f of target().dnsFaults()) target().removeDnsFault(f.name);
});

function server(transport: 'dns-udp' | 'dns-tcp' = 'dns-udp') {
  const e = lab.sim('dns').endpoints.find((x) => x.name === transport)!;
  return { host: e.host, port: e.port };
}

/** The next event of `type` from the dns simulator whose fault (toxic) is `name`. */
function nextEvent(type: string, name: string): Promise<LabEvent> {
  return within(
    new Promise<LabEvent>((resolve) => {
      const off = lab.onEvent((e) => {
        if (e.source !== 'dns' || e.type !== type) return;
        if ((e.data as { toxic?: string }).toxic !== name) return;
        off();
        resolve(e);
      });
    }),
    10_000,
    `${type} of ${name}`,
  );
}

function eventsOf(name: string): string[] {
  return lab.events
    .filter((e) => e.source === 'dns' && (e.data as { toxic?: unknown }).toxic !== undefined)
    .filter((e) => {
      const t = (e.data as { toxic: unknown }).toxic;
      return (typeof t === 'string' ? t : (t as { name: string }).name) === name;
    })
    .map((e) => e.type);
}

describe.skipIf(missing('cmd:dig'))('DNS faults on a lab geo-dns, seen by dig', () => {
  it('servfail for one name and type: that question fails, others are answered; events as toxics', async () => {
    applyFault(lab, 'dns', { type: 'servfail', qname: `${NAME}.`, qtype: 'a', name: 'sf' });
    expect((await dig(server(), [NAME, 'A'])).status).toBe('SERVFAIL');
    expect((await dig(server(), [NAME, 'TXT'])).status).toBe('NOERROR');
    expect((await dig(server(), ['us-east-1.iot.example.com', 'A'])).status).toBe('NOERROR');
    expect(eventsOf('sf')).toEqual(['toxic-added', 'toxic-started', 'toxic-applied']);
    const applied = lab.events.find(
      (e) => e.type === 'toxic-applied' && (e.data as { toxic: string }).toxic === 'sf',
    );
    expect(applied?.data).toMatchObject({ type: 'servfail', query: `${NAME} A`, transport: 'udp' });
    const query = lab.events.filter((e) => e.source === 'dns' && e.type === 'query').at(-3);
    expect(query?.data).toMatchObject({ name: NAME, rcode: 'SERVFAIL' });
  });

  it('nxdomain and refused', async () => {
    applyFault(lab, 'dns', { type: 'nxdomain', qname: NAME });
    const nx = await dig(server(), [NAME, 'A']);
    expect(nx.status).toBe('NXDOMAIN');
    expect(nx.authority[0]?.[3]).toBe('SOA');
    applyFault(lab, 'dns', { type: 'refused', qname: 'us-east-1.iot.example.com' });
    expect((await dig(server(), ['us-east-1.iot.example.com', 'A'])).status).toBe('REFUSED');
  });

  it('drop: dig gets no answer', async () => {
    applyFault(lab, 'dns', { type: 'drop', qname: NAME, qtype: 'A' });
    const r = await dig(server(), [NAME, 'A', '+time=1']);
    expect(r.status).toBeUndefined();
    expect(r.stdout).toMatch(/timed out|no servers could be reached/);
    expect(lab.events.some((e) => e.type === 'query' && (e.data as { rcode: string }).rcode === 'NONE')).toBe(
      true,
    );
  });

  it('delay: the answer comes at least the latency late', async () => {
    applyFault(lab, 'dns', { type: 'delay', qname: NAME, latency: '400ms', jitter: 0 });
    const r = await dig(server(), [NAME, 'A', '+time=5']);
    expect(r.status).toBe('NOERROR');
    const ms = Number(/Query time: (\d+) msec/.exec(r.stdout)?.[1]);
    expect(ms).toBeGreaterThanOrEqual(390);
  });

  it('truncate: UDP answers carry TC and no records; dig retries over TCP and gets the answer', async () => {
    applyFault(lab, 'dns', { type: 'truncate', qname: NAME });
    const udp = await dig(server(), [NAME, 'A', '+ignore']);
    expect(udp.flags).toContain('tc');
    expect(udp.answers).toEqual([]);
    const retried = await dig(server(), [NAME, 'A', EU]);
    expect(retried.stdout).toMatch(/Truncated, retrying in TCP mode/);
    expect(retried.answers.at(-1)?.[4]).toBe('127.53.0.3');
  });

  it('tcp-refused: TCP connections are refused while UDP is answered; removed, TCP works again', async () => {
    applyFault(lab, 'dns', { type: 'tcp-refused', name: 'no-tcp' });
    const refused = await dig(server('dns-tcp'), [NAME, 'A', '+tcp']);
    expect(refused.status).toBeUndefined();
    expect(refused.stdout).toMatch(/connection refused|communications error/);
    expect((await dig(server(), [NAME, 'A'])).status).toBe('NOERROR');
    const removed = nextEvent('toxic-removed', 'no-tcp');
    target().removeDnsFault('no-tcp');
    await removed;
    // The listener comes back asynchronously: retry a bounded number of times.
    let ok = await dig(server('dns-tcp'), [NAME, 'A', '+tcp']);
    for (let i = 0; i < 20 && ok.status === undefined; i++)
      ok = await dig(server('dns-tcp'), [NAME, 'A', '+tcp']);
    expect(ok.status).toBe('NOERROR');
  });

  it('stale: answers from an old record set (a record id), with its TTL replaced', async () => {
    applyFault(lab, 'dns', { type: 'stale', qname: NAME, record: 'us', ttl: 7 });
    const r = await dig(server(), [NAME, 'A', EU]);
    expect(r.answers[0]?.slice(1)).toEqual(['7', 'IN', 'CNAME', 'us-east-1.iot.example.com.']);
  });

  it('wrong-answer: the given address for A; AAAA is untouched', async () => {
    applyFault(lab, 'dns', { type: 'wrong-answer', qname: NAME, address: '203.0.113.9' });
    const a = await dig(server(), [NAME, 'A']);
    expect(a.answers).toEqual([[`${NAME}.`, '60', 'IN', 'A', '203.0.113.9']]);
    const aaaa = await dig(server(), [NAME, 'AAAA', EU]);
    expect(aaaa.answers[0]?.[3]).toBe('CNAME');
  });

  it('scheduled: starts after `start`, removes itself after `duration`', async () => {
    const started = nextEvent('toxic-started', 'later');
    applyFault(lab, 'dns', { type: 'servfail', qname: NAME, name: 'later', start: '300ms', duration: '1s' });
    const added = lab.events.findLast((e) => e.type === 'toxic-added');
    expect(added?.data).toMatchObject({ description: `servfail for ${NAME}, from 300ms for 1.00s` });
    const s = await started;
    expect(s.time - added!.time).toBeGreaterThanOrEqual(290);
    const expired = nextEvent('toxic-removed', 'later');
    expect((await dig(server(), [NAME, 'A'])).status).toBe('SERVFAIL');
    expect((await expired).data).toMatchObject({ reason: 'expired' });
    expect((await dig(server(), [NAME, 'A'])).status).toBe('NOERROR');
  });

  it('the options fault list is sugar over the same faults (and shows the same events)', async () => {
    // The lab's handle is the geo-dns handle itself (harness/adapters/geo-dns.ts).
    const handle = lab.sim('dns').handle as unknown as GeoDnsHandle;
    handle.setFault(NAME, 'servfail');
    expect(
      target()
        .dnsFaults()
        .map((f) => `${f.name} ${f.type}`),
    ).toEqual([`opt_${NAME}_servfail servfail`]);
    expect((await dig(server(), [NAME, 'A'])).status).toBe('SERVFAIL');
    expect(eventsOf(`opt_${NAME}_servfail`)).toEqual(['toxic-added', 'toxic-started', 'toxic-applied']);
    handle.setFault(NAME, undefined);
    expect(target().dnsFaults()).toEqual([]);
  });

  it('bad specs and targets get clear errors', () => {
    expect(() => applyFault(lab, 'dns', { type: 'delay', qname: NAME } as never)).toThrow(
      expect.objectContaining({ code: 'E_BAD_FAULT', message: expect.stringMatching(/latency/) }),
    );
    expect(() => applyFault(lab, 'dns', { type: 'wrong-answer', address: 'nope' } as never)).toThrow(
      /address/,
    );
    applyFault(lab, 'dns', { type: 'servfail', name: 'dup' });
    expect(() => applyFault(lab, 'dns', { type: 'refused', name: 'dup' })).toThrow(
      expect.objectContaining({ code: 'E_FAULT_EXISTS' }),
    );
    expect(() => applyFault(lab, 'dns.dns-udp', { type: 'servfail' })).toThrow(
      expect.objectContaining({ code: 'E_NO_DNS_TARGET' }),
    );
  });
});
