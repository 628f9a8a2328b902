import { Command, InvalidArgumentError, Option } from 'commander';
import { FieldlabError, isFieldlabError } from '../../simulators/common/errors.js';
import type { LocalProxyExit, LocalProxyHandle, LocalProxyOptions } from './index.js';

/**
 * `fieldlab localproxy`: the AWS localproxy's command line (same short and long flags), on the
 * TypeScript localproxy. Exit codes: 0 stopped or the tunnel closed; 1 refused (4xx) or gave up; 2 bad
 * options.
 */

export interface LocalproxyIo {
  env?: NodeJS.ProcessEnv;
  /** Log lines (stderr by default). */
  log?: (line: string) => void;
  /** Ends the run when aborted (the CLI wires SIGINT/SIGTERM). */
  signal?: AbortSignal;
  /** Called once started (tests read `handle.listeners`). */
  onStarted?: (handle: LocalProxyHandle) => void;
}

function wholeMs(v: string): number {
  const n = Number(v);
  if (!Number.isInteger(n) || n < 0)
    throw new InvalidArgumentError('expected milliseconds (a whole number ≥ 0)');
  return n;
}

function subprotocolNumber(v: string): number {
  if (!['1', '2', '3'].includes(v)) throw new InvalidArgumentError('expected 1, 2 or 3');
  return Number(v);
}

interface Flags {
  accessToken?: string;
  clientToken?: string;
  proxyEndpoint?: string;
  region?: string;
  capath?: string;
  sslHostVerify?: boolean;
  sourceListenPort?: string;
  destinationApp?: string;
  localBindAddress?: string;
  mode?: string;
  destinationClientType?: string;
  subprotocol?: number;
  pingInterval?: number;
  retryDelay?: number;
  maxRetries?: number;
}

/** Adds the localproxy options to `cmd` (flags as aws-iot-securetunneling-localproxy's README). */
export function addLocalproxyOptions(cmd: Command): Command {
  return cmd
    .option('-t, --access-token <token>', 'client access token (or env AWSIOT_TUNNEL_ACCESS_TOKEN)')
    .option(
      '-i, --client-token <token>',
      'client token: lets this client reconnect with a used access token (or env AWSIOT_TUNNEL_CLIENT_TOKEN)',
    )
    .option(
      '-e, --proxy-endpoint <host[:port]>',
      'tunnel data endpoint, no scheme (lab: ws:// for plain; or env AWSIOT_TUNNEL_ENDPOINT)',
    )
    .option(
      '-r, --region <region>',
      'endpoint data.tunneling.iot.<region>.amazonaws.com:443 when -e is absent (or env AWSIOT_TUNNEL_REGION)',
    )
    .option('-c, --capath <dir>', 'directory of CA certificates (openssl rehash-ed) to trust')
    .option('-k, --no-ssl-host-verify', 'do not verify the service certificate')
    .option(
      '-s, --source-listen-port <[ID=]port,...>',
      'source mode: local ports, one per service id (without -s: a free port per service)',
    )
    .option('-d, --destination-app <[ID=]host:port,...>', 'destination mode: the local apps, one per service')
    .option(
      '-b, --local-bind-address <address>',
      'source: listen address (default 127.0.0.1); destination: host of a port-only -d (default 127.0.0.1)',
    )
    .addOption(
      new Option('-m, --mode <mode>', 'source or destination (default: from -s / -d)').choices([
        'src',
        'dst',
        'source',
        'destination',
      ]),
    )
    .addOption(
      new Option(
        '-y, --destination-client-type <type>',
        'message format of an older peer: V1 (no service ids), V2 (one connection per stream); default V3. The subprotocol stays 3.0',
      ).choices(['V1', 'V2', 'V3', 'v1', 'v2', 'v3']),
    )
    .option(
      '--subprotocol <n>',
      'lab: offer aws.iot.securetunneling-<n>.0 (1, 2) instead of 3.0, as an older client',
      subprotocolNumber,
    )
    .option('--ping-interval <ms>', 'WebSocket ping interval', wholeMs)
    .option('--retry-delay <ms>', 'delay between attempts after a 5xx or TLS failure', wholeMs)
    .option('--max-retries <n>', 'give up after this many failed attempts in a row', wholeMs);
}

/** Maps parsed flags and the environment to library options (throws E_BAD_OPTION via startLocalProxy). */
export function optionsFromFlags(f: Flags, env: NodeJS.ProcessEnv): LocalProxyOptions {
  const mode = f.mode ?? (f.sourceListenPort ? 'source' : f.destinationApp ? 'destination' : undefined);
  // As localproxy: the lower-case variable wins; a flag wins over the environment.
  const httpsProxy = env.https_proxy || env.HTTPS_PROXY;
  const token = f.accessToken ?? env.AWSIOT_TUNNEL_ACCESS_TOKEN;
  const clientToken = f.clientToken ?? env.AWSIOT_TUNNEL_CLIENT_TOKEN;
  const endpoint = f.proxyEndpoint ?? env.AWSIOT_TUNNEL_ENDPOINT;
  const region = f.region ?? env.AWSIOT_TUNNEL_REGION;
  return {
    mode: mode as LocalProxyOptions['mode'],
    accessToken: token as string,
    ...(clientToken ? { clientToken } : {}),
    ...(endpoint ? { endpoint } : {}),
    ...(region ? { region } : {}),
    ...(f.capath ? { caPath: f.capath } : {}),
    // commander: `--no-ssl-host-verify` sets sslHostVerify false.
    noSslHostVerify: f.sslHostVerify === false,
    ...(f.sourceListenPort ? { sourceListenPort: f.sourceListenPort } : {}),
    ...(f.destinationApp ? { destinationApp: f.destinationApp } : {}),
    ...(f.localBindAddress ? { bindAddress: f.localBindAddress } : {}),
    ...(f.destinationClientType
      ? { destinationClientType: f.destinationClientType as LocalProxyOptions['destinationClientType'] }
      : {}),
    ...(f.subprotocol ? { subprotocol: f.subprotocol as 1 | 2 | 3 } : {}),
    ...(httpsProxy ? { httpsProxy } : {}),
    ...(f.pingInterval ? { pingIntervalMs: f.pingInterval } : {}),
    ...(f.retryDelay !== undefined ? { retryDelayMs: f.retryDelay } : {}),
    ...(f.maxRetries !== undefined ? { maxRetries: f.maxRetries } : {}),
  };
}

function describeExit(exit: LocalProxyExit): string {
  return exit.reason === 'stopped' ? 'localproxy stopped' : `localproxy ended: ${exit.message}`;
}

/** Runs a localproxy from parsed flags until it ends; resolves to the exit code. */
export async function runLocalproxy(flags: Flags, io: LocalproxyIo = {}): Promise<number> {
  const log = io.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const env = io.env ?? process.env;
  const fail = (err: unknown): number => {
    if (!isFieldlabError(err)) throw err;
    log(`error: ${err.message}`);
    if (err.hint) log(`hint: ${err.hint}`);
    return err.code === 'E_BAD_OPTION' ? 2 : 1;
  };
  let handle: LocalProxyHandle;
  try {
    const options = optionsFromFlags(flags, env);
    if (!options.accessToken) {
      throw new FieldlabError('E_BAD_OPTION', 'localproxy: no access token', {
        hint: 'give -t <token> or set AWSIOT_TUNNEL_ACCESS_TOKEN',
      });
    }
    if (options.httpsProxy) log(`Using HTTPS proxy ${options.httpsProxy.replace(/\/\/[^@/]*@/, '//***@')}`);
    // Loaded here so that `fieldlab --help` does not load the WebSocket stack.
    const { startLocalProxy } = await import('./index.js');
    handle = await startLocalProxy(options, { waitReady: false });
  } catch (err) {
    return fail(err);
  }
  const ev = handle.events;
  log(`Starting proxy in ${handle.mode} mode`);
  ev.onEvent('connected', (e) =>
    log(
      `Successfully established websocket connection with proxy server: ${e.url} (subprotocol ${e.protocol})`,
    ),
  );
  ev.onEvent('service-ids', (e) => log(`Service ids: ${e.serviceIds.join(', ')}`));
  ev.onEvent('listening', (e) => log(`Listening for new connection on ${e.host}:${e.port} (${e.serviceId})`));
  ev.onEvent('reconnecting', (e) => log(`Reconnecting in ${e.delayMs} ms: ${e.reason}`));
  ev.onEvent('warning', (e) => log(`warning: ${e.message}`));
  try {
    await handle.ready;
  } catch (err) {
    await handle.done;
    return fail(err);
  }
  io.onStarted?.(handle);
  const onAbort = () => void handle.stop();
  io.signal?.addEventListener('abort', onAbort, { once: true });
  const exit = await handle.done;
  io.signal?.removeEventListener('abort', onAbort);
  log(describeExit(exit));
  if (exit.reason === 'stopped' || exit.reason === 'close-frame') return 0;
  return exit.reason === 'config' ? 2 : 1;
}

/**
 * The `localproxy` command for the fieldlab CLI (`program.addCommand(buildLocalproxyCommand())`). Its
 * action sets `process.exitCode` and stops on SIGINT/SIGTERM.
 */
export function buildLocalproxyCommand(name = 'localproxy'): Command {
  const cmd = new Command(name).description(
    'AWS IoT Secure Tunneling localproxy (source or destination mode), compatible with aws-iot-securetunneling-localproxy',
  );
  addLocalproxyOptions(cmd).action(async (flags: Flags) => {
    const ac = new AbortController();
    const stop = () => ac.abort();
    process.once('SIGINT', stop);
    process.once('SIGTERM', stop);
    try {
      process.exitCode = await runLocalproxy(flags, { signal: ac.signal });
    } finally {
      process.off('SIGINT', stop);
      process.off('SIGTERM', stop);
    }
  });
  return cmd;
}

/**
 * Parses `argv` (the arguments after `localproxy`) and runs until the localproxy ends; resolves to the
 * exit code (0 stopped/closed, 1 refused or gave up, 2 bad options). Never calls `process.exit`.
 */
export async function localproxyCommand(argv: string[], io: LocalproxyIo = {}): Promise<number> {
  const log = io.log ?? ((line: string) => process.stderr.write(`${line}\n`));
  const cmd = addLocalproxyOptions(new Command('localproxy'))
    .exitOverride()
    .configureOutput({ writeErr: (s) => log(s.trimEnd()), writeOut: (s) => log(s.trimEnd()) });
  try {
    cmd.parse(argv, { from: 'user' });
  } catch (err) {
    const code = (err as { code?: string }).code;
    return code === 'commander.helpDisplayed' || code === 'commander.version' ? 0 : 2;
  }
  return runLocalproxy(cmd.opts<Flags>(), io);
}
