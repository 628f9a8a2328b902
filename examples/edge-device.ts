/**
 * The IoT Edge device persona: point it at your device's `config.toml` and your deployment manifest, and
 * it connects the way the IoT Edge 1.4/1.5 runtime would, with the official Node SDKs: the identity
 * service's DPS registration, then `$edgeAgent` and `$edgeHub` as `ModuleClient`s, each with the env,
 * protocol, proxy and trust store the runtime gives that process (harness/clients/edge-device/derive.ts).
 *
 *   node dist/examples/edge-device.js --config config.toml --deployment deployment.json \
 *     --module-cs '$edgeAgent=HostName=...;DeviceId=...;ModuleId=$edgeAgent;SharedAccessKey=...' \
 *     --module-cs '$edgeHub=...' [--file /etc/aziot/trust-bundle.pem=./bundle.pem] \
 *     [--os-store roots.pem] [--image-roots roots.pem] [--timeout-ms 10000]
 *
 * What is not in your files comes from here:
 *   https_proxy / HTTPS_PROXY    this process's env stands for the daemons' (systemctl edit aziot-identityd)
 *   --module-cs / EDGEAGENT_CONNECTION_STRING, EDGEHUB_CONNECTION_STRING
 *                                the module identities' keys (the runtime gets tokens from aziot-identityd)
 *   --file dev=local / EDGE_FILES (dev=local;dev=local)
 *                                where your file:// paths (trust_bundle_cert, identity_cert...) are here
 *   --os-store / EDGE_OS_STORE   the host's trusted roots (/etc/ssl/certs), read by the daemons
 *   --image-roots / EDGE_IMAGE_ROOTS
 *                                the roots inside the module images (default for both: Node's roots)
 *   --config / EDGE_CONFIG, --deployment / EDGE_DEPLOYMENT, --timeout-ms / EDGE_TIMEOUT_MS (10000 per try)
 *
 * Prints one line per process; exit 0 when every one reached the hub, 1 when one did not (the SDK's
 * error on stderr), 2 for a file it cannot read (what is wrong and how to fix it).
 */
import { readFileSync } from 'node:fs';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import { type FileMap, parseEdgeConfig } from '../harness/clients/edge-device/config.js';
import type { ModuleId, ModulePlan } from '../harness/clients/edge-device/derive.js';
import { parseDeployment } from '../harness/clients/edge-device/manifest.js';
import { type EdgeRunOptions, runEdgeDevice, type StepReport } from '../harness/clients/edge-device/run.js';
import { FieldlabError } from '../simulators/common/errors.js';

/** A proxy URL with its password hidden, for printing. */
export function redactProxy(url: string): string {
  return url.replace(/^([a-z][a-z0-9+.-]*:\/\/[^:@/]*:)[^@/]*@/i, '$1***@');
}

function pairs(values: readonly string[], what: string): Array<[string, string]> {
  return values.map((v) => {
    const i = v.indexOf('=');
    if (i <= 0) {
      throw new FieldlabError('E_EDGE_ARGS', `${what} "${v}" is not name=value`, {
        hint: `write ${what} a=b`,
      });
    }
    return [v.slice(0, i), v.slice(i + 1)];
  });
}

function readText(file: string, what: string): string {
  try {
    return readFileSync(file, 'utf8');
  } catch (err) {
    throw new FieldlabError('E_EDGE_ARGS', `cannot read ${what} ${file}: ${(err as Error).message}`, {
      hint: `check the ${what} path`,
    });
  }
}

/** The run's options from argv and env (exported for tests). */
export function optionsFrom(argv: string[], env: NodeJS.ProcessEnv): EdgeRunOptions {
  const { values } = parseArgs({
    args: argv,
    options: {
      config: { type: 'string' },
      deployment: { type: 'string' },
      file: { type: 'string', multiple: true, default: [] },
      'module-cs': { type: 'string', multiple: true, default: [] },
      'os-store': { type: 'string' },
      'image-roots': { type: 'string' },
      'timeout-ms': { type: 'string' },
    },
  });
  const configFile = values.config ?? env.EDGE_CONFIG;
  const deploymentFile = values.deployment ?? env.EDGE_DEPLOYMENT;
  if (!configFile || !deploymentFile) {
    throw new FieldlabError('E_EDGE_ARGS', 'give --config <config.toml> and --deployment <deployment.json>', {
      hint: 'the device config file (/etc/aziot/config.toml) and the deployment manifest JSON',
    });
  }
  const fileArgs = [...(env.EDGE_FILES ? env.EDGE_FILES.split(';').filter(Boolean) : []), ...values.file];
  const files: FileMap = new Map(pairs(fileArgs, '--file'));
  const moduleKeys: Partial<Record<ModuleId, string>> = {};
  if (env.EDGEAGENT_CONNECTION_STRING) moduleKeys.$edgeAgent = env.EDGEAGENT_CONNECTION_STRING;
  if (env.EDGEHUB_CONNECTION_STRING) moduleKeys.$edgeHub = env.EDGEHUB_CONNECTION_STRING;
  for (const [id, cs] of pairs(values['module-cs'], '--module-cs')) {
    if (id !== '$edgeAgent' && id !== '$edgeHub') {
      throw new FieldlabError('E_EDGE_ARGS', `--module-cs: ${id} is not a system module`, {
        hint: "name '$edgeAgent' or '$edgeHub' (quote the $ in a shell)",
      });
    }
    moduleKeys[id] = cs;
  }
  const osStore = values['os-store'] ?? env.EDGE_OS_STORE;
  const imageRoots = values['image-roots'] ?? env.EDGE_IMAGE_ROOTS;
  const timeoutMs = Number(values['timeout-ms'] ?? env.EDGE_TIMEOUT_MS ?? 10_000);
  if (!Number.isFinite(timeoutMs) || timeoutMs <= 0) {
    throw new FieldlabError('E_EDGE_ARGS', `--timeout-ms ${String(timeoutMs)} is not a positive number`, {
      hint: 'give milliseconds, e.g. 10000',
    });
  }
  return {
    config: parseEdgeConfig(readText(configFile, 'config.toml'), files),
    deployment: parseDeployment(readText(deploymentFile, 'deployment manifest')),
    serviceEnv: { https_proxy: env.https_proxy, HTTPS_PROXY: env.HTTPS_PROXY },
    moduleKeys,
    ...(osStore ? { osStore: [readText(osStore, 'OS store')] } : {}),
    ...(imageRoots ? { imageRoots: [readText(imageRoots, 'image roots')] } : {}),
    timeoutMs,
  };
}

function describePlan(p: ModulePlan): string {
  return [
    `UpstreamProtocol ${p.protocols.join(' then ') || '?'}`,
    p.proxy ? `https_proxy ${redactProxy(p.proxy)}` : 'no https_proxy',
    p.trustBundleFile ? `trust bundle ${p.trustBundleFile}` : 'no trust bundle',
  ].join(', ');
}

function line(s: StepReport): string {
  const head = `edge-device: ${s.process} ${s.what}`;
  const plan = s.plan ? ` [${describePlan(s.plan)}]` : '';
  const o = s.outcome;
  if ('skipped' in o) return `${head}: ${o.skipped}`;
  const via = 'protocol' in o && o.protocol ? ` via ${o.protocol}` : '';
  if (o.ok) return `${head}: connected${via}${plan}`;
  const cause = o.cause ? ` (${o.cause})` : '';
  return `${head}: error ${o.errorClass}${cause}${via}${plan}: ${o.message}`;
}

async function main(): Promise<void> {
  let options: EdgeRunOptions;
  try {
    options = optionsFrom(process.argv.slice(2), process.env);
  } catch (err) {
    if (err instanceof FieldlabError) {
      process.stderr.write(`edge-device: ${err.message}\n${err.hint ? `  hint: ${err.hint}\n` : ''}`);
      process.exit(2);
    }
    throw err;
  }
  // https-proxy-agent stops listening to the proxy socket once its CONNECT promise has failed; a TLS error
  // that socket raises afterwards (an https:// URL for a plain proxy) would end the process. The module's
  // failure is the SDK's error it already returned; this one is only noted (on stdout: it decides nothing).
  process.on('uncaughtException', (err: NodeJS.ErrnoException) => {
    // Socket errors only (ECONNRESET, EPROTO, ERR_SSL_*...): anything else is a bug and ends the run.
    if (typeof err?.code !== 'string' || !/^(E[A-Z]+$|ERR_SSL_|ERR_TLS_)/.test(err.code)) throw err;
    process.stdout.write(`edge-device: note: a proxy socket failed after its request had: ${err.message}\n`);
  });
  const steps = await runEdgeDevice(options);
  for (const s of steps) {
    // Fallbacks that led to a connection are reported on stdout: only failures go to stderr.
    const fell = 'fellBackFrom' in s.outcome ? (s.outcome.fellBackFrom ?? []) : [];
    for (const f of fell) {
      const out = s.outcome.ok ? process.stdout : process.stderr;
      out.write(
        `edge-device: ${s.process} ${s.what}: ${f.protocol} failed first: ${f.errorClass} ${f.message}\n`,
      );
    }
    (s.outcome.ok ? process.stdout : process.stderr).write(`${line(s)}\n`);
  }
  const failedStep = steps.find((s) => !s.outcome.ok);
  process.exit(failedStep ? 1 : 0);
}

if (process.argv[1] && import.meta.url === pathToFileURL(process.argv[1]).href) void main();
