/**
 * An operator's "ssh to a device through AWS IoT Secure Tunneling" run, as the AWS manual-setup guide
 * describes it: open a tunnel with the AWS SDK, start localproxy in destination mode next to the
 * device's sshd and in source mode on the operator's side, then run the real `ssh` through the source
 * port. Exits 0 when the remote command printed what it should.
 *
 *   TUNNEL_API       management API URL (the SDK's endpoint)
 *   TUNNEL_DATA      data endpoint host:port (localproxy -e)
 *   TUNNEL_CA        PEM bundle the operator trusts (localproxy's CAs)
 *   DEVICE_SSH       the device's sshd host:port (destination localproxy -d)
 *   SSH_KEY, SSH_USER   the operator's key and the device user
 *   HTTPS_PROXY      the operator's corporate proxy (source side only)
 *   DEVICE_HOST      netns backend: the device's network host; the destination localproxy then runs
 *                    there (`ip netns exec`, `fieldlab localproxy`), trusting DEVICE_CA_DIR, while this
 *                    client (the source localproxy and ssh) runs on the operator's host
 *   REUSE_SOURCE_TOKEN=1   connect a second source with the already used token (the field mistake)
 *   ROTATE=1         rotate the source token before that second connection (the fix)
 * A source localproxy the service refuses ends (as the AWS localproxy does) and ssh then finds nothing on
 * its port: ssh's failure and the service's `token-rejected` event make the verdict, not our words.
 */
import { readFileSync } from 'node:fs';
import { createServer } from 'node:net';
import { fileURLToPath } from 'node:url';
import {
  CloseTunnelCommand,
  IoTSecureTunnelingClient,
  OpenTunnelCommand,
  RotateTunnelAccessTokenCommand,
} from '@aws-sdk/client-iotsecuretunneling';
import { execa, type ResultPromise } from 'execa';
import { type LocalProxyHandle, startLocalProxy } from '../harness/localproxy/index.js';
import { isFieldlabError } from '../simulators/common/errors.js';
import { sshClientArgv } from '../simulators/sshd/index.js';

const env = process.env;
function need(name: string): string {
  const v = env[name];
  if (!v) fail('E_CONFIG', `${name} is not set`);
  return v;
}
function fail(code: string, message: string): never {
  process.stderr.write(`tunnel-ssh: ${code}: ${message}\n`);
  process.exit(1);
}

async function main(): Promise<void> {
  const ca = [readFileSync(need('TUNNEL_CA'), 'utf8')];
  const endpoint = need('TUNNEL_DATA');
  const sdk = new IoTSecureTunnelingClient({
    endpoint: need('TUNNEL_API'),
    region: 'us-east-1',
    credentials: { accessKeyId: 'AKIDFIELDLAB', secretAccessKey: 'fieldlab' },
  });
  const opened = await sdk.send(
    new OpenTunnelCommand({
      destinationConfig: { thingName: 'device-1', services: ['SSH'] },
      timeoutConfig: { maxLifetimeTimeoutMinutes: 5 },
    }),
  );
  const proxies: LocalProxyHandle[] = [];
  let device: { child: ResultPromise } | undefined;
  try {
    const common = { endpoint, ca, maxRetries: 2, retryDelayMs: 200 };
    const deviceNs = await deviceNamespace();
    if (deviceNs) {
      device = await destinationIn(deviceNs, opened.destinationAccessToken!, endpoint);
    } else {
      proxies.push(
        await startLocalProxy({
          ...common,
          mode: 'destination',
          accessToken: opened.destinationAccessToken!,
          destinationApp: { SSH: need('DEVICE_SSH') },
        }),
      );
    }
    const httpsProxy = env.HTTPS_PROXY ?? env.https_proxy;
    // The operator's `localproxy -s <port>`: a port chosen before it starts, so ssh goes there whatever
    // became of the localproxy.
    const port = await freePort();
    const source = (accessToken: string, sourcePort = 0) =>
      startLocalProxy(
        {
          ...common,
          mode: 'source',
          accessToken,
          sourceListenPort: { SSH: sourcePort },
          ...(httpsProxy ? { httpsProxy } : {}),
        },
        { waitReady: false },
      );
    let sourceToken = opened.sourceAccessToken!;
    if (env.REUSE_SOURCE_TOKEN === '1') {
      // A first session used the token (a colleague, an earlier run, a retry script).
      const first = await source(sourceToken);
      await first.ready;
      await first.stop();
      if (env.ROTATE === '1') {
        const rotated = await sdk.send(
          new RotateTunnelAccessTokenCommand({ tunnelId: opened.tunnelId!, clientMode: 'SOURCE' }),
        );
        sourceToken = rotated.sourceAccessToken!;
      }
    }
    const src = await source(sourceToken, port);
    proxies.push(src);
    const refused = await src.ready.then(
      () => undefined,
      async (err: unknown) => ((await src.done).reason === 'handshake-rejected' ? err : Promise.reject(err)),
    );
    // The service refused the handshake (it records why): localproxy ends, as the AWS one exits, and the
    // operator's ssh finds nothing on the port. ssh's failure and the service's event make the verdict.
    // Any other failure (TLS, proxy) never reached the service: localproxy's own error is the report.
    if (refused) {
      process.stdout.write(
        `tunnel-ssh: source localproxy ended: ${refused instanceof Error ? refused.message : String(refused)}\n`,
      );
    }
    const [ssh, ...args] = sshClientArgv(
      { host: '127.0.0.1', port, key: need('SSH_KEY'), user: need('SSH_USER') },
      ['echo', 'tunnel-ok'],
    );
    const r = await execa(ssh!, args, { reject: false, timeout: 30_000 });
    if (r.stdout.trim() !== 'tunnel-ok')
      fail('E_SSH', `ssh exited ${r.exitCode}: ${r.stderr.trim() || r.stdout.trim()}`);
    process.stdout.write('tunnel-ssh: ssh through the tunnel printed tunnel-ok\n');
  } finally {
    device?.child.kill('SIGTERM');
    await Promise.allSettled([...proxies.map((p) => p.stop()), ...(device ? [device.child] : [])]);
    await sdk
      .send(new CloseTunnelCommand({ tunnelId: opened.tunnelId!, delete: true }))
      .catch(() => undefined);
  }
}

/**
 * netns backend: the device host's namespace, a sibling of the one this client runs in
 * (`fl-<lab>-<host>`, harness/topology/netns/plan.ts); undefined elsewhere (loopback, a container).
 */
async function deviceNamespace(): Promise<string | undefined> {
  const host = env.DEVICE_HOST;
  if (!host) return undefined;
  const r = await execa('ip', ['netns', 'identify', String(process.pid)], { reject: false });
  const lab = /^(fl-[a-z0-9]{1,10})-[a-z][a-z0-9-]*$/.exec(String(r.stdout).trim())?.[1];
  return lab === undefined ? undefined : `${lab}-${host}`;
}

/**
 * The device's `localproxy -d SSH=<sshd>` in its own namespace (`fieldlab localproxy`, the AWS flags),
 * resolved when it has its WebSocket to the service.
 */
async function destinationIn(ns: string, token: string, endpoint: string): Promise<{ child: ResultPromise }> {
  const cli = fileURLToPath(new URL('../harness/cli/bin.js', import.meta.url));
  const child = execa(
    'ip',
    [
      ...['netns', 'exec', ns, process.execPath, cli, 'localproxy', '-e', endpoint],
      ...['-d', `SSH=${need('DEVICE_SSH')}`, '-c', need('DEVICE_CA_DIR')],
    ],
    {
      reject: false,
      // The device's own environment: not the operator's proxy settings.
      extendEnv: false,
      env: { PATH: env.PATH ?? '/usr/bin:/bin', AWSIOT_TUNNEL_ACCESS_TOKEN: token },
      timeout: 120_000,
    },
  );
  let log = '';
  await new Promise<void>((resolve, reject) => {
    const timer = setTimeout(
      () => reject(new Error(`destination localproxy in ${ns}: no connection in 20 s: ${log}`)),
      20_000,
    );
    child.stderr?.on('data', (d: Buffer) => {
      log += d.toString();
      if (log.includes('Successfully established websocket connection')) {
        clearTimeout(timer);
        resolve();
      }
    });
    void child.then((r) => {
      clearTimeout(timer);
      reject(new Error(`destination localproxy in ${ns} exited ${r.exitCode}: ${log.trim()}`));
    });
  });
  // Wrapped: an async function would wait for the process itself (it is a promise too).
  return { child };
}

/** A free local port for the source localproxy (the operator's `-s 5555`). */
async function freePort(): Promise<number> {
  const server = createServer();
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  const address = server.address();
  await new Promise((r) => server.close(r));
  if (address === null || typeof address === 'string') fail('E_PORT', 'no local port');
  return address.port;
}

main().catch((err: unknown) => {
  if (isFieldlabError(err)) fail(err.code, err.message);
  fail('E_UNEXPECTED', err instanceof Error ? err.message : String(err));
});
