import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startWorkerProcess, type WorkerSimulator } from '../../harness/backends/remote/worker-process.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { authorityOf, type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { assertBuilt, BIN } from '../helpers/cli.js';
import { within } from '../helpers/within.js';
import { alive, faultLog, hereSpawner, httpsStatus, tcpOutcome } from './remote-helpers.js';

/**
 * issue 14 (1, 3): a simulator in another process (`fieldlab serve-lab`) is controlled over its
 * stdin/stdout, and the lab's handle on its relay is a real `RelayHandle`: add, update, remove, list,
 * stats and setUpstream all reach the worker's relay. Here the worker runs in this namespace (the netns
 * test runs it in one of a lab's).
 */
let dir = '';
let pki: PkiHandle;
let worker: WorkerSimulator | undefined;
const events: LabEvent[] = [];
const spawner = hereSpawner();
const faults = faultLog();

beforeAll(async () => {
  assertBuilt();
  dir = mkdtempSync(join(tmpdir(), 'fl-remote-stdio-'));
  process.env.FIELDLAB_STATE_DIR = join(dir, 'state');
  pki = await startPki({ name: 'pki', dir: join(dir, 'pki') });
  worker = await startWorkerProcess({
    network: spawner,
    host: 'cloud',
    lab: 'remote',
    simulator: { name: 'api', type: 'https-server', host: 'api.iot.example.com' },
    dir: join(dir, 'api'),
    authority: authorityOf(pki),
    faults,
    onEvent: (e) => events.push(e),
    fieldlab: [process.execPath, BIN],
  });
});
afterAll(async () => {
  await worker?.handle.stop();
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(dir, { recursive: true, force: true });
});

const seen = (source: string, type: string) =>
  within(
    new Promise<LabEvent>((resolve) => {
      const check = () => {
        const e = events.find((x) => x.source === source && x.type === type);
        if (e) resolve(e);
        else setTimeout(check, 20);
      };
      check();
    }),
    10_000,
    `${source} ${type}`,
  );

describe('a simulator process controlled over stdio', () => {
  it('is ready on its address, serves with the lab CA, and streams its events', async () => {
    const w = worker as WorkerSimulator;
    const ep = w.endpoints[0];
    expect(ep).toMatchObject({ name: 'https', host: '127.0.0.1' });
    expect(w.relays.get('https')?.endpoint).toEqual({ host: '127.0.0.1', port: ep?.port });
    expect(w.vars.cert).toMatch(/\.pem$/);
    // Namespaces (and this process) share the kernel's clock: no offset.
    expect(w.clockOffsetMs).toBe(0);
    expect(await httpsStatus('127.0.0.1', ep?.port ?? 0, 'api.iot.example.com', pki.root.certPem)).toBe(200);
    await seen('api-relay', 'connection');
    await seen('api', 'tls-established');
  });

  it('adds, lists, updates and removes a toxic on the worker’s relay', async () => {
    const relay = (worker as WorkerSimulator).relays.get('https');
    if (!relay) throw new Error('no relay');
    const port = relay.endpoint.port;
    // The mirror answers at once; the worker's own list once the request is through.
    expect(relay.addToxic({ type: 'latency', latency: 40, name: 'slow' }).name).toBe('slow');
    expect(relay.toxics().map((t) => t.name)).toEqual(['slow']);
    await within(faults.applied(), 10_000, 'add');
    expect((await relay.refresh()).toxics).toMatchObject([{ name: 'slow', type: 'latency', latency: 40 }]);

    relay.updateToxic('slow', { latency: 90 });
    expect(relay.toxics()).toMatchObject([{ name: 'slow', latency: 90 }]);
    await within(faults.applied(), 10_000, 'update');
    expect((await relay.refresh()).toxics).toMatchObject([{ name: 'slow', latency: 90 }]);

    relay.removeToxic('slow');
    expect(relay.toxics()).toEqual([]);
    await within(faults.applied(), 10_000, 'remove');
    expect((await relay.refresh()).toxics).toEqual([]);

    // A toxic that acts: refuse closes the worker's listener (the kernel answers SYN with RST).
    relay.addToxic({ type: 'refuse', name: 'closed' });
    await within(faults.applied(), 10_000, 'refuse');
    expect(await tcpOutcome('127.0.0.1', port)).toBe('ECONNREFUSED');
    relay.removeToxic('closed');
    await within(faults.applied(), 10_000, 'remove refuse');
    await seen('api-relay', 'listening');
    expect(await tcpOutcome('127.0.0.1', port)).toBe('ok');
  });

  it('checks toxics here first and surfaces what the worker refuses', async () => {
    const w = worker as WorkerSimulator;
    const relay = w.relays.get('https');
    if (!relay) throw new Error('no relay');
    expect(() => relay.addToxic({ type: 'latency' } as never)).toThrow(/toxic\.latency/);
    expect(() => relay.removeToxic('nothing')).toThrow(expect.objectContaining({ code: 'E_NO_SUCH_TOXIC' }));
    relay.addToxic({ type: 'latency', latency: 5, name: 'twice' });
    expect(() => relay.addToxic({ type: 'latency', latency: 5, name: 'twice' })).toThrow(
      expect.objectContaining({ code: 'E_TOXIC_EXISTS' }),
    );
    await within(faults.applied(), 10_000, 'add twice');
    // The worker refuses what the mirror cannot know (a toxic added behind its back, another target).
    const refused = await w.channel.request({
      op: 'add',
      target: 'api',
      toxic: { type: 'latency', latency: 5, name: 'twice' },
    });
    expect(refused).toMatchObject({ ok: false, error: { code: 'E_TOXIC_EXISTS' } });
    const other = await w.channel.request({ op: 'list', target: 'nobody' });
    expect(other).toMatchObject({ ok: false, error: { code: 'E_NO_SUCH_SIMULATOR' } });
    relay.removeToxic('twice');
    await within(faults.applied(), 10_000, 'remove twice');
  });

  it('counts connections in stats, from the replies and the relay events', async () => {
    const relay = (worker as WorkerSimulator).relays.get('https');
    if (!relay) throw new Error('no relay');
    const before = (await relay.refresh()).stats.connections;
    expect(relay.stats().connections).toBe(before);
    expect(await tcpOutcome('127.0.0.1', relay.endpoint.port)).toBe('ok');
    const closed = new Promise<void>((resolve) => relay.events.onceEvent('closed', () => resolve()));
    await within(closed, 10_000, 'the relay closed event on the handle');
    expect(relay.stats().connections).toBe(before + 1);
    expect((await relay.refresh()).stats.connections).toBe(before + 1);
  });

  it('moves new connections elsewhere with setUpstream', async () => {
    const relay = (worker as WorkerSimulator).relays.get('https');
    if (!relay) throw new Error('no relay');
    // Port 1 on loopback: nothing listens there, so the relay's upstream connect fails.
    relay.setUpstream({ host: '127.0.0.1', port: 1 });
    await within(faults.applied(), 10_000, 'setUpstream');
    const n = events.length;
    await tcpOutcome('127.0.0.1', relay.endpoint.port);
    await within(
      new Promise<void>((resolve) => {
        const check = () =>
          events.slice(n).some((e) => e.type === 'upstream-error') ? resolve() : setTimeout(check, 20);
        check();
      }),
      10_000,
      'upstream-error',
    );
    expect(() => relay.setUpstream({ host: '', port: 0 })).toThrow(/upstream/);
  });

  it('answers a malformed request with an error and goes on serving', async () => {
    const w = worker as WorkerSimulator;
    const child = spawner.children.at(-1);
    expect(child?.pid).toBe(w.pid);
    // Raw lines on the worker's stdin: not JSON, an unknown op, a bad toxic.
    const lines = [
      'not json',
      JSON.stringify({ id: 'x1', op: 'explode', target: 'api' }),
      JSON.stringify({ id: 'x2', op: 'add', target: 'api', toxic: { type: 'nonsense' } }),
    ];
    for (const l of lines) child?.stdin?.write(`${l}\n`);
    const replies = await within(
      new Promise<string[]>((resolve) => {
        const check = () => {
          const got = w.logs.filter((l) => l.startsWith('{"reply"'));
          if (got.length >= 3) resolve(got);
          else setTimeout(check, 20);
        };
        check();
      }),
      10_000,
      'three error replies',
    );
    const parsed = replies.slice(-3).map((r) => JSON.parse(r));
    expect(parsed[0]).toMatchObject({ reply: null, ok: false, error: { code: 'E_BAD_CONTROL' } });
    expect(parsed[1]).toMatchObject({ reply: 'x1', ok: false, error: { code: 'E_BAD_CONTROL' } });
    expect(parsed[1].error.hint).toMatch(/add, update, remove, list, stats, setUpstream/);
    expect(parsed[2]).toMatchObject({ reply: 'x2', ok: false, error: { code: 'E_BAD_TOXIC' } });
    expect(alive(w.pid)).toBe(true);
    expect(await w.channel.request({ op: 'list', target: 'api' })).toMatchObject({ ok: true });
  });

  it('stops: SIGTERM ends the process, and the channel refuses afterwards', async () => {
    const w = worker as WorkerSimulator;
    await within(w.handle.stop(), 15_000, 'stop');
    expect(alive(w.pid)).toBe(false);
    await expect(w.channel.request({ op: 'list', target: 'api' })).rejects.toMatchObject({
      code: 'E_REMOTE_CONTROL',
    });
  });

  it('a worker that cannot start fails with E_WORKER_START and its own words, and leaves no process', async () => {
    const before = spawner.children.length;
    await expect(
      startWorkerProcess({
        network: spawner,
        host: 'cloud',
        lab: 'remote',
        simulator: { name: 'odd', type: 'no-such-simulator', host: 'odd.iot.example.com' },
        dir: join(dir, 'odd'),
        authority: authorityOf(pki),
        faults,
        onEvent: () => undefined,
        fieldlab: [process.execPath, BIN],
      }),
    ).rejects.toMatchObject({
      code: 'E_WORKER_START',
      message: expect.stringMatching(/odd \(no-such-simulator\) in cloud did not start: it exited/),
      hint: expect.stringMatching(/unknown simulator type no-such-simulator/),
    });
    const child = spawner.children[before];
    expect(child?.pid === undefined ? false : alive(child.pid)).toBe(false);
  });
});
