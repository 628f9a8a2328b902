import { randomBytes } from 'node:crypto';
import { chmodSync, mkdtempSync, readdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { request } from 'node:http';
import { connect } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { IMAGE_UID, startContainerLab } from '../../harness/backends/container/index.js';
import { CONTROL_PORT } from '../../harness/backends/remote/protocol.js';
import type { Lab } from '../../harness/lab/lab.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { ensureImage, IMAGE } from './helpers.js';

/**
 * issue 12 (3, 6): the container backend wrote the lab CA's private keys (in `<sim>.spec.json`) 0644 in a
 * 0777 lab directory, and its simulators' control API took toxics from anyone on the lab network. Now the
 * lab directory is 0700 and the specs 0600, owned by the containers' user only; the control API wants
 * the lab's secret.
 */
// A state directory the lab makes itself, under a parent other users may enter (as a home directory).
let parent = '';
beforeAll(() => {
  parent = mkdtempSync(join(tmpdir(), 'fl-sec-container-'));
  chmodSync(parent, 0o755);
  process.env.FIELDLAB_STATE_DIR = join(parent, 'state');
});
afterAll(() => {
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(parent, { recursive: true, force: true });
});

const mode = (p: string) => statSync(p).mode & 0o777;

/** Runs `argv` as the user `nobody` (another local user); resolves to its exit code. */
async function asNobody(argv: string[]): Promise<{ code: number; out: string }> {
  const r = await execa('setpriv', ['--reuid=nobody', '--regid=nogroup', '--clear-groups', ...argv], {
    reject: false,
    timeout: 10_000,
  });
  return { code: r.exitCode ?? -1, out: `${r.stdout}${r.stderr}` };
}

function post(
  ip: string,
  body: unknown,
  headers: Record<string, string>,
): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = request(
      {
        host: ip,
        port: CONTROL_PORT,
        path: '/toxics',
        method: 'POST',
        agent: false,
        timeout: 10_000,
        headers: { 'content-type': 'application/json', ...headers },
      },
      (res) => {
        let text = '';
        res.setEncoding('utf8').on('data', (d: string) => (text += d));
        res.on('end', () => resolve({ status: res.statusCode ?? 0, body: text }));
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

describe.skipIf(missing('docker'))('container lab: private files and an authenticated control API', () => {
  let lab: Lab;
  beforeAll(async () => {
    await ensureImage();
    lab = await startContainerLab(
      {
        name: 'sec',
        simulators: [{ name: 'api', type: 'https-server', host: 'api.example.com', port: 8443 }],
      },
      { image: IMAGE },
    );
  }, 900_000);
  afterAll(async () => {
    await lab?.stop();
  }, 120_000);

  it('keeps the lab directory 0700 and the specs (the CA keys) 0600', () => {
    // The state directory the lab made, and the one of its labs, are closed too.
    expect(mode(join(parent, 'state')) & 0o022).toBe(0);
    expect(mode(join(parent, 'state', 'labs'))).toBe(0o700);
    expect(mode(lab.dir)).toBe(0o700);
    const spec = join(lab.dir, 'api.spec.json');
    expect(mode(spec)).toBe(0o600);
    expect(mode(join(lab.dir, 'api'))).toBe(0o700);
    // It is the spec that carries the keys.
    expect(readFileSync(spec, 'utf8')).toMatch(/PRIVATE KEY/);
    // Run as root, the files belong to the image's user, which the containers run as.
    if (process.geteuid?.() === 0) {
      expect(statSync(lab.dir).uid).toBe(IMAGE_UID);
      expect(statSync(spec).uid).toBe(IMAGE_UID);
    }
    // No private key anywhere under the lab directory is readable by group or others.
    const walk = (dir: string): string[] =>
      readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
        e.isDirectory() ? walk(join(dir, e.name)) : [join(dir, e.name)],
      );
    for (const f of walk(lab.dir)) {
      if (/PRIVATE KEY/.test(readFileSync(f, 'utf8'))) expect([f, mode(f) & 0o077]).toEqual([f, 0]);
    }
  });

  it.skipIf(missing('root'))('another local user cannot read the keys nor list the lab', async () => {
    const spec = join(lab.dir, 'api.spec.json');
    // The lab's own directory is the lock: it holds even when the directories above it are open.
    chmodSync(join(parent, 'state'), 0o755);
    chmodSync(join(parent, 'state', 'labs'), 0o755);
    const cat = await asNobody(['cat', spec]);
    expect(cat.code).not.toBe(0);
    expect(cat.out).not.toMatch(/PRIVATE KEY/);
    expect((await asNobody(['ls', lab.dir])).code).not.toBe(0);
    // Nor put a file of its own there (a spec a container would read).
    expect((await asNobody(['touch', join(lab.dir, 'evil.spec.json')])).code).not.toBe(0);
  });

  it('the control API refuses requests without the lab secret; they have no effect', async () => {
    const ip = lab.hosts.get('api.example.com')!;
    const added: string[] = [];
    let sawHarness = () => {};
    const harnessAdded = new Promise<void>((resolve) => (sawHarness = resolve));
    lab.onEvent((e) => {
      if (e.type !== 'toxic-added') return;
      const name = String((e.data as { toxic?: { name?: string } }).toxic?.name);
      added.push(name);
      if (name === 'harness') sawHarness();
    });
    const toxic = (name: string) => ({ target: 'api', toxic: { type: 'latency', latency: 1, name } });
    expect((await post(ip, toxic('anyone'), {})).status).toBe(401);
    const wrong = { authorization: `Bearer ${randomBytes(32).toString('base64url')}` };
    expect((await post(ip, toxic('wrong-secret'), wrong)).status).toBe(401);
    // The harness's own path (with the secret) still works: its toxic arrives, the refused ones never do.
    lab.relay('api').addToxic({ type: 'latency', latency: 1, name: 'harness' });
    await within(lab.faultsApplied(), 15_000, 'the toxic to reach the container');
    await within(harnessAdded, 15_000, "the container's toxic-added event");
    expect(added).toEqual(['harness']);
  });

  it('the lab’s handle on a container relay removes toxics and counts connections (issue 14)', async () => {
    const relay = lab.relay('api');
    const removed = new Promise<void>((resolve) =>
      lab.onEvent((e) => {
        if (e.source === 'api-relay' && e.type === 'toxic-removed') resolve();
      }),
    );
    relay.addToxic({ type: 'latency', latency: 1, name: 'gone-soon' });
    relay.updateToxic('gone-soon', { latency: 2 });
    expect(relay.toxics().find((t) => t.name === 'gone-soon')).toMatchObject({ latency: 2 });
    relay.removeToxic('gone-soon');
    expect(relay.toxics().map((t) => t.name)).not.toContain('gone-soon');
    await within(lab.faultsApplied(), 15_000, 'add, update and remove to reach the container');
    await within(removed, 15_000, "the container relay's toxic-removed event");
    // Its figures follow the container relay's events.
    const before = relay.stats().connections;
    const closed = new Promise<void>((resolve) => relay.events.onceEvent('closed', () => resolve()));
    await new Promise<void>((resolve, reject) => {
      const s = connect({ host: relay.endpoint.host, port: relay.endpoint.port, timeout: 10_000 });
      s.once('connect', () => s.end());
      s.once('close', () => resolve());
      s.once('error', reject);
    });
    await within(closed, 15_000, 'the closed event of the container relay');
    expect(relay.stats().connections).toBe(before + 1);
  });
});
