import { type ChildProcess, spawn } from 'node:child_process';
import { once } from 'node:events';
import { join } from 'node:path';
import mqtt from 'mqtt';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { endpointOf } from '../../simulators/common/handle.js';
import { type MqttBrokerHandle, start } from '../../simulators/mqtt-broker/index.js';

/*
 * aedes 1.2 dies with "RangeError: Maximum call stack size exceeded" (mqemitter's released → _do →
 * fastparallel → released ...) when an open-loop QoS 0 publisher floods it and then it and its subscriber
 * disconnect (simulators/mqtt-broker/delivery.ts explains why). Both halves run the same clients:
 * aedes' benchmarks/sender.js and receiver.js as child processes.
 */
const FIXTURES = join(import.meta.dirname, 'fixtures');
const QUEUE_MARK = 3000;
const children: ChildProcess[] = [];
let broker: MqttBrokerHandle | undefined;

afterEach(async () => {
  for (const c of children.splice(0)) if (c.exitCode === null && c.signalCode === null) c.kill('SIGKILL');
  await broker?.stop();
  broker = undefined;
});

function node(script: string, args: string[] = [], env: Record<string, string> = {}): ChildProcess {
  const child = spawn(process.execPath, [join(FIXTURES, script), ...args], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, ...env },
    cwd: process.cwd(),
  });
  children.push(child);
  return child;
}

/** Resolves with the first match of `re` on the child's stdout (bounded). */
function stdoutMatch(child: ChildProcess, re: RegExp, ms: number): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let out = '';
    const timer = setTimeout(() => reject(new Error(`no ${re} within ${ms} ms; stdout: ${out}`)), ms);
    child.stdout?.on('data', (d: Buffer) => {
      out += d.toString();
      const m = re.exec(out);
      if (m) {
        clearTimeout(timer);
        resolve(m);
      }
    });
  });
}

async function killAndWait(c: ChildProcess): Promise<void> {
  if (c.exitCode !== null || c.signalCode !== null) return;
  const exited = once(c, 'exit');
  c.kill('SIGKILL');
  await exited;
}

/** Starts the flood's subscriber and publisher against `port`. */
async function flood(port: number): Promise<{ stop(): Promise<void> }> {
  const sub = node('flood-subscriber.mjs', [String(port)]);
  await stdoutMatch(sub, /subscribed/, 5000);
  const pub = node('flood-publisher.mjs', [String(port)]);
  await stdoutMatch(pub, /flooding/, 5000);
  return { stop: () => Promise.all([killAndWait(pub), killAndWait(sub)]).then(() => undefined) };
}

describe('mqtt-broker under a QoS 0 flood', () => {
  it('a bare aedes (1.2, 2.0.0-beta.1) crashes with "Maximum call stack size exceeded" (the reproduction)', async () => {
    const bare = node('bare-aedes.mjs', [], { QUEUE_MARK: String(QUEUE_MARK) });
    let stderr = '';
    bare.stderr?.on('data', (d: Buffer) => {
      stderr += d.toString();
    });
    const port = Number((await stdoutMatch(bare, /port (\d+)/, 5000))[1]);
    const f = await flood(port);
    await stdoutMatch(bare, /queued \d+/, 12_000);
    const exited = once(bare, 'exit') as Promise<[number | null, string | null]>;
    await f.stop();
    const [code] = await Promise.race([
      exited,
      new Promise<[string]>((r) => setTimeout(() => r(['still alive']), 8000)),
    ]);
    expect(code).toBe(1);
    expect(stderr).toMatch(/RangeError: Maximum call stack size exceeded/);
  }, 30_000);

  it('the lab broker survives the same flood and keeps serving another client', async () => {
    broker = await start({ name: 'flood' });
    const url = endpointOf(broker, 'mqtt').url!;
    const mq = (broker.broker as unknown as { mq: { length: number } }).mq;
    const other = await mqtt.connectAsync(url, { clientId: 'bystander', reconnectPeriod: 0 });
    await other.subscribeAsync('bystander/#', { qos: 1 });
    const f = await flood(endpointOf(broker, 'mqtt').port);
    let peak = 0;
    await vi.waitFor(
      () => {
        peak = Math.max(peak, mq.length);
        expect(peak).toBeGreaterThan(QUEUE_MARK);
      },
      { timeout: 12_000, interval: 5 },
    );
    // During the flood: a round trip through the broker still completes.
    const during = new Promise<string>((r) => other.once('message', (_t, p) => r(p.toString())));
    await other.publishAsync('bystander/during', 'during', { qos: 1 });
    expect(await during).toBe('during');
    await f.stop();
    // After: the queue drains without the crash, and the broker still serves.
    await vi.waitFor(() => expect(mq.length).toBe(0), { timeout: 15_000, interval: 20 });
    const after = new Promise<string>((r) => other.once('message', (_t, p) => r(p.toString())));
    await other.publishAsync('bystander/after', 'after', { qos: 1 });
    expect(await after).toBe('after');
    await other.endAsync();
  }, 40_000);
});
