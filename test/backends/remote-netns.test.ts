import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerProcess, type WorkerSimulator } from '../../harness/backends/remote/worker-process.js';
import { applyNetns, type NetnsLab } from '../../harness/topology/netns/apply.js';
import { runSync } from '../../harness/topology/netns/exec.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { authorityOf, type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';
import { assertBuilt, BIN } from '../helpers/cli.js';
import { within } from '../helpers/within.js';
import { namespacesOf } from '../netns/helpers.js';
import { alive, faultLog } from './remote-helpers.js';

/**
 * issue 14 (3): on netns a simulator ran in fieldlab's process, in the root namespace. Now it can run as
 * its own process in its host's namespace (`fieldlab serve-lab` through `ip netns exec`), listening on
 * the host's address there; a client in another namespace reaches it across the lab's veths, its events
 * come back over the pipe, and its relay's toxics are set over the worker's stdin.
 */
const labId = `rw${process.pid}`.slice(0, 10);
const CLOUD = '198.51.100.20';
const NAME = 'api.iot.example.com';
const NS = '198.51.100.30';

describe.skipIf(missing('netns', 'cmd:curl', 'cmd:dig'))('a simulator process in a network namespace', () => {
  let dir = '';
  let lab: NetnsLab | undefined;
  let pki: PkiHandle;
  let worker: WorkerSimulator | undefined;
  let dns: WorkerSimulator | undefined;
  const events: LabEvent[] = [];
  const faults = faultLog();

  beforeAll(async () => {
    assertBuilt();
    dir = mkdtempSync(join(tmpdir(), 'fl-remote-netns-'));
    process.env.FIELDLAB_STATE_DIR = join(dir, 'state');
    lab = await applyNetns({
      labId,
      segments: [{ name: 'lan', cidr: '198.51.100.0/24' }],
      hosts: [
        { name: 'device', segments: [{ segment: 'lan', address: '198.51.100.10' }] },
        { name: 'cloud', segments: [{ segment: 'lan', address: CLOUD }] },
        { name: 'ns', segments: [{ segment: 'lan', address: NS }] },
      ],
    });
    pki = await startPki({ name: 'pki', dir: join(dir, 'pki') });
    worker = await startWorkerProcess({
      network: lab,
      host: 'cloud',
      lab: 'remote-netns',
      simulator: { name: 'api', type: 'https-server', host: NAME, port: 8443 },
      dir: join(dir, 'api'),
      authority: authorityOf(pki),
      faults,
      onEvent: (e) => events.push(e),
      fieldlab: [process.execPath, BIN],
    });
    dns = await startWorkerProcess({
      network: lab,
      host: 'ns',
      lab: 'remote-netns',
      simulator: {
        name: 'dns',
        type: 'geo-dns',
        host: 'ns1.iot.example.com',
        options: {
          zones: [
            {
              origin: 'iot.example.com',
              soa: { mname: 'ns1.iot.example.com', rname: 'hostmaster.iot.example.com', minimum: 60 },
              records: [{ name: 'us-east-1', type: 'A', value: CLOUD }],
            },
          ],
        },
      },
      dir: join(dir, 'dns'),
      authority: authorityOf(pki),
      faults,
      onEvent: (e) => events.push(e),
      fieldlab: [process.execPath, BIN],
    });
  }, 60_000);

  afterAll(async () => {
    const pids = [worker?.pid, dns?.pid];
    await worker?.handle.stop();
    await dns?.handle.stop();
    await lab?.teardown();
    // Teardown leaves no process and no namespace.
    for (const pid of pids) if (pid !== undefined) expect(alive(pid)).toBe(false);
    expect(namespacesOf(labId)).toEqual([]);
    await pki?.stop?.();
    delete process.env.FIELDLAB_STATE_DIR;
    rmSync(dir, { recursive: true, force: true });
  });

  /** curl from the device's namespace to the simulator by its name (pinned to the cloud's address). */
  const curl = async () => {
    const r = await (lab as NetnsLab).execIn(
      'device',
      [
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        '-w',
        '%{http_code}',
        '--max-time',
        '5',
        '--cacert',
        pki.trust.bundlePath,
        '--resolve',
        `${NAME}:8443:${CLOUD}`,
        `https://${NAME}:8443/`,
      ],
      { timeoutMs: 15_000 },
    );
    return { code: r.exitCode, out: r.stdout.trim(), err: r.stderr.trim() };
  };

  const listening = (argv: string[]) => runSync(argv).stdout.includes(`${CLOUD}:8443`);

  it('listens on the host’s address in its own namespace, not in the root one', () => {
    const w = worker as WorkerSimulator;
    expect(w.endpoints[0]).toMatchObject({ host: CLOUD, port: 8443 });
    const ss = runSync(['ip', 'netns', 'exec', (lab as NetnsLab).ns('cloud'), 'ss', '-tlnp']).stdout;
    const line = ss.split('\n').find((l) => l.includes(`${CLOUD}:8443`)) ?? '';
    expect(line).toContain(`pid=${w.pid},`);
    expect(listening(['ss', '-tlnp'])).toBe(false);
    expect(listening(['ip', 'netns', 'exec', (lab as NetnsLab).ns('device'), 'ss', '-tlnp'])).toBe(false);
  });

  it('serves curl in the device’s namespace across the lab network, and its events come back', async () => {
    expect(await curl()).toMatchObject({ code: 0, out: '200' });
    const connection = await within(
      new Promise<LabEvent>((resolve) => {
        const check = () => {
          const e = events.find((x) => x.source === 'api-relay' && x.type === 'connection');
          if (e) resolve(e);
          else setTimeout(check, 20);
        };
        check();
      }),
      10_000,
      'the relay’s connection event',
    );
    // The client's real address: the packets crossed from the device's namespace.
    expect((connection.data as { remote: string }).remote).toMatch(/^198\.51\.100\.10:\d+$/);
    expect(events.some((e) => e.source === 'api' && e.type === 'request')).toBe(true);
  });

  it('a refuse toxic set over stdin makes curl fail; removed, curl passes', async () => {
    const relay = (worker as WorkerSimulator).relays.get('https');
    if (!relay) throw new Error('no relay');
    relay.addToxic({ type: 'refuse', name: 'down' });
    await within(faults.applied(), 10_000, 'the refuse toxic');
    const refused = await curl();
    expect(refused.code).toBe(7); // curl: couldn't connect
    expect(refused.err).toMatch(/Failed to connect|refused/i);
    relay.removeToxic('down');
    await within(faults.applied(), 10_000, 'removing it');
    await within(
      new Promise<void>((resolve) => {
        const check = () =>
          events.some((e) => e.source === 'api-relay' && e.type === 'toxic-removed')
            ? resolve()
            : setTimeout(check, 20);
        check();
      }),
      10_000,
      'toxic-removed',
    );
    expect(await curl()).toMatchObject({ code: 0, out: '200' });
  });

  it('a DNS server binds port 53 on its host’s address itself, and dig in another namespace gets its answer', async () => {
    const d = dns as WorkerSimulator;
    // Its own sockets (not relayed): resolv.conf takes no port, so 53 it is.
    expect(d.endpoints.find((e) => e.name === 'dns-udp')).toMatchObject({ host: NS, port: 53 });
    expect(d.relays.has('dns-udp')).toBe(false);
    const udp = runSync(['ip', 'netns', 'exec', (lab as NetnsLab).ns('ns'), 'ss', '-ulnp']).stdout;
    expect(udp.split('\n').find((l) => l.includes(`${NS}:53`)) ?? '').toContain(`pid=${d.pid},`);
    const r = await (lab as NetnsLab).execIn(
      'device',
      ['dig', `@${NS}`, '+short', '+time=2', '+tries=1', 'us-east-1.iot.example.com', 'A'],
      { timeoutMs: 15_000 },
    );
    expect(r.stdout.trim()).toBe(CLOUD);
  });
});
