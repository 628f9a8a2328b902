import { spawn } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { dirname, join, resolve } from 'node:path';
import { fileURLToPath } from 'node:url';
import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { parseOptions } from '../../simulators/common/options.js';
import { start as startTunnelService } from '../../simulators/tunnel-service/index.js';
import { checkCapability, which } from '../capabilities.js';
import { type LoadKind, runNodeDriver } from './node-driver.js';

/**
 * `fieldlab load tunnel|tunnel-open-rate`: starts the lab tunnel service on 127.0.0.1 (ephemeral ports)
 * and runs a load test against it, with k6 (load/*.js, k6's own output and summary) or, where k6 is
 * absent or `driver: 'node'`, the built-in Node driver (the same measurement, thresholds and summary
 * format). Both write k6's `--summary-export` JSON to `<out>/k6-summary.json`.
 *
 * ```
 * runTunnelLoad ─ start tunnel-service (api http://127.0.0.1:A, data ws://127.0.0.1:D)
 *               ├ k6 run --summary-export out/k6-summary.json -e API_URL=… -e DATA_URL=… load/<x>.js
 *               └ or runNodeDriver(...) → out/k6-summary.json
 * ```
 */

export type { LoadKind } from './node-driver.js';
export { THRESHOLDS_FAILED } from './node-driver.js';

/** The summary file both drivers write in `out`. */
export const SUMMARY_FILE = 'k6-summary.json';

const SCRIPTS: Record<LoadKind, string> = {
  tunnel: 'tunnel-throughput.js',
  'tunnel-open-rate': 'tunnel-open-rate.js',
};
const THRESHOLD_KEYS: Record<LoadKind, string> = {
  tunnel: 'tunnel-throughput',
  'tunnel-open-rate': 'tunnel-open-rate',
};
/** The metric FAIL_THRESHOLD adds an impossible threshold to (as lib/tunnel-api.js thresholdsFor). */
const FAIL_METRIC: Record<LoadKind, string> = {
  tunnel: 'tunnel_frame_latency_ms',
  'tunnel-open-rate': 'tunnel_open_ms',
};

/** Milliseconds of a k6 duration (`500ms`, `10s`, `1m30s`), or undefined. As load/lib/config.js. */
export function k6DurationMs(text: string): number | undefined {
  const s = text.trim();
  if (/^\d+(\.\d+)?$/.test(s)) return Number(s) * 1000;
  const units: Record<string, number> = { ms: 1, s: 1000, m: 60_000, h: 3_600_000 };
  let total = 0;
  let matched = '';
  for (const m of s.matchAll(/(\d+(?:\.\d+)?)(ms|s|m|h)/g)) {
    total += Number(m[1]) * (units[m[2] as string] ?? 0);
    matched += m[0];
  }
  return matched !== '' && matched === s ? total : undefined;
}

export const tunnelLoadOptionsSchema = z
  .object({
    kind: z.enum(['tunnel', 'tunnel-open-rate']),
    vus: z.coerce.number().int().min(1).max(10_000),
    duration: z
      .string()
      .refine((d) => (k6DurationMs(d) ?? 0) > 0, 'expected a k6 duration such as 10s or 1m30s'),
    out: z.string().min(1),
    driver: z.enum(['k6', 'node']).optional(),
    /**
     * More script settings, passed to k6 as `-e NAME=value` and read the same way by the Node driver:
     * PAYLOAD_SIZE, WINDOW, SESSION, SERVICE, FAIL_THRESHOLD (see load/lib/config.js).
     */
    env: z.record(z.string(), z.string()).default({}),
    /** Where output goes. Absent: k6 inherits the terminal, the Node driver writes to stdout. */
    write: z.custom<(text: string) => void>((v) => typeof v === 'function').optional(),
  })
  .strict();

export type TunnelLoadOptions = z.input<typeof tunnelLoadOptionsSchema>;

/** The repository's (or package's) `load/` folder: the k6 scripts and thresholds.json. */
export function loadDir(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (let i = 0; i < 6; i++) {
    if (existsSync(join(dir, 'load', 'tunnel-throughput.js'))) return join(dir, 'load');
    dir = dirname(dir);
  }
  throw new FieldlabError('E_NO_LOAD_SCRIPTS', 'cannot find the load/ folder with the k6 scripts', {
    hint: 'run fieldlab from its repository checkout (load/ sits next to harness/)',
  });
}

/** A kind's thresholds from load/thresholds.json, plus FAIL_THRESHOLD's impossible one. */
export function thresholdsFor(kind: LoadKind, env: Record<string, string>): Record<string, string[]> {
  const all = JSON.parse(readFileSync(join(loadDir(), 'thresholds.json'), 'utf8')) as Record<
    string,
    Record<string, string[]>
  >;
  const t = structuredClone(all[THRESHOLD_KEYS[kind]] ?? {});
  if (env.FAIL_THRESHOLD) t[FAIL_METRIC[kind]] = [...(t[FAIL_METRIC[kind]] ?? []), 'p(95)<0'];
  return t;
}

function intSetting(env: Record<string, string>, name: string, fallback: number, min: number, max: number) {
  const raw = env[name];
  const v = raw === undefined || raw === '' ? fallback : Number(raw);
  if (!Number.isInteger(v) || v < min || v > max) {
    throw new FieldlabError('E_BAD_OPTION', `${name}=${raw}: expected a whole number from ${min} to ${max}`, {
      hint: 'see the settings table in load/lib/config.js',
    });
  }
  return v;
}

/** Runs k6 on a script; resolves to its exit code. */
function runK6(k6: string, args: string[], write: ((text: string) => void) | undefined): Promise<number> {
  return new Promise((resolveCode, reject) => {
    const child = spawn(k6, args, {
      stdio: write ? ['ignore', 'pipe', 'pipe'] : 'inherit',
      env: {
        ...process.env,
        // Network safety: k6 must not phone home (usage report) nor fetch extensions.
        K6_NO_USAGE_REPORT: 'true',
        K6_AUTO_EXTENSION_RESOLUTION: 'false',
      },
    });
    if (write) {
      child.stdout?.on('data', (b: Buffer) => write(b.toString()));
      child.stderr?.on('data', (b: Buffer) => write(b.toString()));
    }
    child.once('error', reject);
    child.once('close', (code, signal) => resolveCode(code ?? (signal ? 128 : 1)));
  });
}

/**
 * Starts the lab tunnel service on 127.0.0.1 and runs one load test against it. Resolves to the exit
 * code: 0; 99 when a threshold failed (k6's code, also from the Node driver); k6's other codes as k6
 * gives them. The summary JSON lands in `<out>/k6-summary.json`.
 */
export async function runTunnelLoad(options: TunnelLoadOptions): Promise<number> {
  const o = parseOptions(tunnelLoadOptionsSchema, options, 'load');
  const durationMs = k6DurationMs(o.duration) as number;
  const scripts = loadDir();
  const k6 = o.driver === 'node' ? undefined : checkCapability('k6');
  if (o.driver === 'k6' && !k6?.ok) {
    throw new FieldlabError('E_NO_K6', `k6 is not installed: ${k6?.reason}`, {
      hint: 'install it with scripts/install-k6.sh, or use --driver node',
    });
  }
  const write = o.write ?? ((text: string) => void process.stdout.write(text));
  const useK6 = k6?.ok === true;
  // Settings are checked up front for both drivers (k6 would only fail in its init context).
  const settings = {
    payloadSize: intSetting(o.env, 'PAYLOAD_SIZE', 1024, 16, 64512),
    window: intSetting(o.env, 'WINDOW', 16, 1, 4096),
    sessionMs: k6DurationMs(o.env.SESSION ?? '5s'),
  };
  if (settings.sessionMs === undefined) {
    throw new FieldlabError('E_BAD_OPTION', `SESSION=${o.env.SESSION}: not a duration`, { hint: 'e.g. 5s' });
  }
  const thresholds = thresholdsFor(o.kind, o.env);
  const out = resolve(o.out);
  mkdirSync(out, { recursive: true });
  const summaryPath = join(out, SUMMARY_FILE);

  const service = await startTunnelService({ host: '127.0.0.1', apiPort: 0, dataPort: 0 });
  try {
    const apiUrl = service.endpoints.find((e) => e.name === 'api')?.url as string;
    const dataUrl = service.endpoints.find((e) => e.name === 'data')?.url as string;
    let code: number;
    if (useK6) {
      const env: Record<string, string> = {
        ...o.env,
        API_URL: apiUrl,
        DATA_URL: dataUrl,
        VUS: String(o.vus),
        DURATION: o.duration,
      };
      const args = ['run', '--no-usage-report', '--address', '', '--summary-export', summaryPath];
      for (const [k, v] of Object.entries(env)) args.push('-e', `${k}=${v}`);
      args.push(join(scripts, SCRIPTS[o.kind]));
      code = await runK6(which('k6') as string, args, o.write);
    } else {
      if (o.driver !== 'node') {
        write('k6 not found: using the built-in Node driver (install k6 with scripts/install-k6.sh)\n');
      }
      const r = await runNodeDriver({
        kind: o.kind,
        apiUrl,
        dataUrl,
        vus: o.vus,
        durationMs,
        payloadSize: settings.payloadSize,
        window: settings.window,
        sessionMs: settings.sessionMs,
        service: o.env.SERVICE ?? 'SSH',
        thresholds,
        write,
      });
      writeFileSync(summaryPath, `${JSON.stringify(r.summary, null, 2)}\n`);
      code = r.exitCode;
    }
    const s = service.stats();
    write(
      `tunnel service: ${s.tunnelsClosed} tunnels closed, ${s.framesRelayed} messages relayed ` +
        `(${s.bytesRelayed} DATA bytes), ${s.framesDropped} dropped, ${s.violations} protocol violations\n` +
        `summary: ${summaryPath}\n`,
    );
    return code;
  } finally {
    await service.stop();
  }
}

/** Flags of `fieldlab load <kind>` (the CLI wires them; see load/README.md). */
export interface LoadFlags {
  /** `--vus <n>`: virtual users, each one tunnel at a time (default 4). */
  vus: number | string;
  /** `--duration <d>`: k6 duration, e.g. 10s, 1m30s (default 10s). */
  duration: string;
  /** `--out <dir>`: where k6-summary.json goes (default fieldlab-load). */
  out: string;
  /** `--driver <k6|node>`: force a driver; default k6 when installed, else the Node driver. */
  driver?: 'k6' | 'node';
}

/** CLI entry for `fieldlab load tunnel|tunnel-open-rate`: runs the test and sets `process.exitCode`. */
export async function loadCommand(kind: LoadKind, flags: LoadFlags): Promise<void> {
  process.exitCode = await runTunnelLoad({
    kind,
    vus: Number(flags.vus),
    duration: flags.duration,
    out: flags.out,
    ...(flags.driver ? { driver: flags.driver } : {}),
  });
}
