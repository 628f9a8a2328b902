/**
 * An operator's ssh to a device through AWS IoT Secure Tunneling when the device runs an agent (AWS IoT
 * Device Client's secure tunneling feature; here examples/tunnel-device-agent.ts): the operator opens the
 * tunnel with the AWS SDK naming the device's thing (`destinationConfig.thingName`), AWS IoT delivers the
 * destination token to the agent over MQTT, the agent starts its destination localproxy; the operator runs
 * a source localproxy and the real `ssh` through it. Exits 0 when every ssh the step needs worked; when an
 * ssh fails, exits 1 with ssh's own error as the last line.
 *
 * The agent is started first (the device is online and subscribed before anyone opens a tunnel, as the AWS
 * tutorial's prerequisites say): `node $DEVICE_AGENT`, with this environment; its lines go to stdout.
 *
 *   TUNNEL_API       management API URL (the SDK's endpoint)
 *   TUNNEL_DATA      data endpoint host:port (the source localproxy's -e)
 *   TUNNEL_CA        PEM bundle the operator trusts
 *   THING            the device's thing name
 *   SSH_KEY, SSH_USER   the operator's key and the device user
 *   DEVICE_AGENT     the device agent program (a .js file)
 *   LIFETIME_MINUTES timeoutConfig.maxLifetimeTimeoutMinutes of the tunnel (default 30)
 *   STEP             what happens after the first ssh:
 *                      none      nothing (default)
 *                      rotate    RotateTunnelAccessToken (DESTINATION): the agent restarts its localproxy
 *                                with the new token; a copy of the first destination token is refused;
 *                                ssh again
 *                      close     CloseTunnel, then the operator starts localproxy again and ssh again
 *                      lifetime  no first ssh: wait for the tunnel's lifetime to end the source localproxy,
 *                                then start localproxy again and ssh again
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { createInterface } from 'node:readline';
import {
  CloseTunnelCommand,
  DescribeTunnelCommand,
  IoTSecureTunnelingClient,
  OpenTunnelCommand,
  RotateTunnelAccessTokenCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { execa } from 'execa';
import { type LocalProxyHandle, startLocalProxy } from '../harness/localproxy/index.js';
import { isFieldlabError } from '../simulators/common/errors.js';
import { sshClientArgv } from '../simulators/sshd/index.js';

const NAME = 'tunnel-notify';
const env = process.env;

/** A failure to report: thrown, so the agent and the tunnel are always cleaned up first. */
class Failure extends Error {
  constructor(
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}
function fail(code: string, message: string): never {
  throw new Failure(code, message);
}
function need(name: string): string {
  return env[name] || fail('E_CONFIG', `${name} is not set`);
}
function say(line: string): void {
  process.stdout.write(`${NAME}: ${line}\n`);
}
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p,
    new Promise<T>((_r, rej) => {
      timer = setTimeout(() => rej(new Error(`${what}: not within ${ms} ms`)), ms);
    }),
  ]).finally(() => clearTimeout(timer));
}

/** Starts the device agent and resolves once it says it is subscribed. */
async function startAgent(program: string): Promise<ChildProcess> {
  const child = spawn(process.execPath, [program], { env, stdio: ['ignore', 'pipe', 'pipe'] });
  const subscribed = new Promise<void>((resolve, reject) => {
    createInterface({ input: child.stdout! }).on('line', (line) => {
      process.stdout.write(`[device] ${line}\n`);
      if (/: subscribed to /.test(line)) resolve();
    });
    child.once('exit', (code) => reject(new Error(`the device agent exited (${code}) before subscribing`)));
  });
  // The agent's own errors are the device's log, not the operator's: they go to stdout too.
  createInterface({ input: child.stderr! }).on('line', (line) => process.stdout.write(`[device] ${line}\n`));
  // A run killed by the harness (timeout) must not leave the device behind.
  const orphan = () => child.kill('SIGKILL');
  process.once('exit', orphan);
  child.once('exit', () => process.off('exit', orphan));
  await within(subscribed, 20_000, 'the device agent subscribing').catch(async (err: unknown) => {
    await stopAgent(child);
    throw err;
  });
  return child;
}

async function stopAgent(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((r) => child.once('exit', () => r()));
  child.kill('SIGTERM');
  await within(exited, 5000, 'the device agent stopping').catch(() => child.kill('SIGKILL'));
}

/** A free local port for the source localproxy (the operator's `-s 5555`). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') return fail('E_PORT', 'no local port');
  return address.port;
}

async function main(): Promise<void> {
  const step = env.STEP ?? 'none';
  if (!['none', 'rotate', 'close', 'lifetime'].includes(step))
    fail('E_CONFIG', `STEP=${step}: use none, rotate, close or lifetime`);
  const thingName = need('THING');
  const ca = [readFileSync(need('TUNNEL_CA'), 'utf8')];
  const endpoint = need('TUNNEL_DATA');
  const agent = await startAgent(need('DEVICE_AGENT'));
  const sdk = new IoTSecureTunnelingClient({
    endpoint: need('TUNNEL_API'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDFIELDLAB', secretAccessKey: 'fieldlab' },
  });
  const proxies: LocalProxyHandle[] = [];
  let tunnelId: string | undefined;
  try {
    const opened = await sdk.send(
      new OpenTunnelCommand({
        destinationConfig: { thingName, services: ['SSH'] },
        timeoutConfig: { maxLifetimeTimeoutMinutes: Number(env.LIFETIME_MINUTES ?? 30) },
      }),
    );
    tunnelId = opened.tunnelId!;
    say(`opened tunnel ${tunnelId} for thing ${thingName}`);

    /** What the console's tunnel page shows: waits until the device side is connected (or the tunnel closed). */
    const destinationConnected = async (): Promise<void> => {
      const deadline = Date.now() + 20_000;
      while (Date.now() < deadline) {
        const { tunnel } = await sdk.send(new DescribeTunnelCommand({ tunnelId }));
        if (tunnel?.status === 'CLOSED') return;
        if (tunnel?.destinationConnectionState?.status === 'CONNECTED') return;
        await sleep(200);
      }
      fail('E_DEVICE', 'the device never connected to the tunnel (is its agent subscribed?)');
    };

    const port = await freePort();
    const sourceToken = opened.sourceAccessToken!;
    /**
     * `localproxy -s <port> -t <token>`. A handshake the service refused (it records why) ends it, as the
     * AWS localproxy exits, and ssh then finds nothing on the port: ssh's failure and the service's event
     * make the verdict. Any other failure never reached the service: localproxy's error is the report.
     */
    const source = async (): Promise<LocalProxyHandle | undefined> => {
      const p = await startLocalProxy(
        {
          endpoint,
          ca,
          mode: 'source',
          accessToken: sourceToken,
          sourceListenPort: { SSH: port },
          maxRetries: 2,
          retryDelayMs: 200,
        },
        { waitReady: false },
      );
      proxies.push(p);
      try {
        await p.ready;
        return p;
      } catch (err) {
        if ((await p.done).reason !== 'handshake-rejected') throw err;
        say(`source localproxy ended: ${err instanceof Error ? err.message : String(err)}`);
        return undefined;
      }
    };
    const ssh = async (): Promise<void> => {
      const [cmd, ...args] = sshClientArgv(
        { host: '127.0.0.1', port, key: need('SSH_KEY'), user: need('SSH_USER') },
        ['echo', 'tunnel-ok'],
      );
      const r = await execa(cmd!, args, { reject: false, timeout: 30_000 });
      if (r.stdout.trim() !== 'tunnel-ok') {
        const said = r.stderr.trim().split('\n').pop() || r.stdout.trim();
        fail('E_SSH', `ssh exited ${r.exitCode}: ${said}`);
      }
      say('ssh through the tunnel printed tunnel-ok');
    };

    await destinationConnected();
    const src = await source();
    if (step !== 'lifetime') await ssh();

    if (step === 'rotate') {
      await sdk.send(
        new RotateTunnelAccessTokenCommand({
          tunnelId,
          clientMode: 'DESTINATION',
          destinationConfig: { thingName, services: ['SSH'] },
        }),
      );
      say('rotated the destination token (delivered to the device over MQTT)');
      await destinationConnected();
      // A copy of the first destination token (a script or second device holding it) no longer connects.
      const stale = await startLocalProxy(
        {
          endpoint,
          ca,
          mode: 'destination',
          accessToken: opened.destinationAccessToken!,
          destinationApp: { SSH: '127.0.0.1:9' },
          maxRetries: 0,
        },
        { waitReady: false },
      );
      const exit = await within(stale.done, 10_000, 'the stale destination token');
      if (exit.reason !== 'handshake-rejected') {
        fail('E_STALE_TOKEN', `the first destination token still connected (${exit.reason})`);
      }
      say(`the first destination token is refused: HTTP ${exit.status}`);
      await ssh();
    } else if (step === 'close' || step === 'lifetime') {
      if (step === 'close') {
        await sdk.send(new CloseTunnelCommand({ tunnelId }));
        say('closed the tunnel');
      }
      if (src) {
        const exit = await within(src.done, step === 'lifetime' ? 120_000 : 10_000, 'the tunnel ending');
        say(`source localproxy ended: ${exit.reason} (${exit.message})`);
      }
      // The operator runs localproxy again, as after any dropped session.
      await source();
      await ssh();
    }
  } finally {
    await Promise.allSettled(proxies.map((p) => p.stop()));
    await stopAgent(agent);
    if (tunnelId) {
      await sdk.send(new CloseTunnelCommand({ tunnelId, delete: true })).catch(() => undefined);
    }
    sdk.destroy();
  }
}

// The harness ends a run that overstays its timeout with SIGTERM: clean up as on any failure.
for (const signal of ['SIGTERM', 'SIGINT'] as const) process.once(signal, () => process.exit(1));

main().catch((err: unknown) => {
  const code = err instanceof Failure || isFieldlabError(err) ? err.code : 'E_UNEXPECTED';
  process.stderr.write(`${NAME}: ${code}: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exitCode = 1;
});
