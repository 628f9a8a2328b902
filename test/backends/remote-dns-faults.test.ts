import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { remoteDnsFaults } from '../../harness/backends/remote/dns-faults.js';
import { httpControlChannel } from '../../harness/backends/remote/http-channel.js';
import { startControlApi } from '../../harness/backends/remote/http-server.js';
import { dnsFaultTarget } from '../../harness/faults/dns.js';
import { startLab } from '../../harness/lab/lab.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { within } from '../helpers/within.js';

/**
 * issue 18.1/18.3 on the worker backends: DNS faults on a geo-dns in a worker (a container, a namespace)
 * travel over its control protocol (`addDnsFault`, `removeDnsFault`, `listDnsFaults`); before, the lab
 * refused them (E_NO_DNS_TARGET: only relay toxics travelled). The worker's HTTP control API here in
 * front of a loopback lab's geo-dns, the lab's `remoteDnsFaults` over it.
 */
useTempStateDir('fl-remote-dns-');
const cleanups: Array<() => Promise<unknown>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setUp() {
  const lab = await startLab({
    name: 'remote-dns',
    simulators: [
      {
        name: 'dns',
        type: 'geo-dns',
        host: 'ns1.example.net',
        options: {
          zones: [
            {
              origin: 'iot.example.com',
              soa: { mname: 'ns1.example.net', rname: 'hostmaster.example.net', minimum: 30 },
            },
          ],
        },
      },
    ],
  });
  cleanups.push(() => lab.stop());
  const token = randomBytes(32).toString('base64url');
  const server = await startControlApi(lab, { token, host: '127.0.0.1', port: 0 });
  cleanups.push(() => new Promise((r) => server.close(r)));
  const port = (server.address() as AddressInfo).port;
  const remote = remoteDnsFaults({
    target: 'dns',
    channel: httpControlChannel({ host: '127.0.0.1', port, token }),
    faults: lab,
  });
  return { lab, remote, local: dnsFaultTarget(lab, 'dns') };
}

describe('DNS faults over the worker’s control protocol', () => {
  it('adds, lists and removes a DNS fault on the worker’s geo-dns', async () => {
    const { lab, remote, local } = await setUp();
    const added = remote.addDnsFault({ type: 'servfail', qname: 'API.iot.example.com.', qtype: 'a' });
    // Named and normalised here as the simulator does it, so both sides call it the same.
    expect(added).toMatchObject({
      name: 'servfail_api.iot.example.com',
      qname: 'api.iot.example.com',
      qtype: 'A',
    });
    await within(lab.faultsApplied(), 10_000, 'add');
    expect(local.dnsFaults()).toMatchObject([{ name: 'servfail_api.iot.example.com', type: 'servfail' }]);
    expect(remote.dnsFaults()).toEqual(local.dnsFaults());

    remote.removeDnsFault('servfail_api.iot.example.com');
    await within(lab.faultsApplied(), 10_000, 'remove');
    expect(local.dnsFaults()).toEqual([]);
    expect(remote.dnsFaults()).toEqual([]);
  });

  it('refuses a bad fault at once, naming the field; the worker’s own refusal surfaces in faultsApplied', async () => {
    const { lab, remote, local } = await setUp();
    expect(() => remote.addDnsFault({ type: 'delay', latency: 'soon' } as never)).toThrow(
      expect.objectContaining({ code: 'E_BAD_FAULT', message: expect.stringMatching(/latency/) }),
    );
    expect(() => remote.removeDnsFault('nothing')).toThrow(
      expect.objectContaining({ code: 'E_NO_SUCH_FAULT' }),
    );
    // Added on the worker by someone else: this side's mirror does not know it, the worker refuses.
    local.addDnsFault({ type: 'refused', name: 'taken' });
    remote.addDnsFault({ type: 'nxdomain', name: 'taken' });
    await expect(within(lab.faultsApplied(), 10_000, 'the refusal')).rejects.toMatchObject({
      code: 'E_FAULT_EXISTS',
    });
  });

  it('a fault that expires in the worker leaves the mirror too (its toxic-removed event)', async () => {
    const { lab, remote } = await setUp();
    const seen = new Promise<void>((resolve) => {
      const off = lab.onEvent((e) => {
        remote.ingest(e);
        if (e.source === 'dns' && e.type === 'toxic-removed') {
          off();
          resolve();
        }
      });
    });
    remote.addDnsFault({ type: 'drop', name: 'brief', duration: 50 });
    await within(lab.faultsApplied(), 10_000, 'add');
    await within(seen, 10_000, 'the fault’s expiry');
    expect(remote.dnsFaults()).toEqual([]);
  });
});
