import type { FailureClass, Verdict } from './classes.js';
import type { CommandResult } from './command-result.js';
import type { Phase, PhaseName } from './phases.js';

/**
 * curl support: the write-out that gives phase timings, its parser, and the mapping from curl's exit
 * codes and messages to failure classes. Verified against curl 7.88.1 / OpenSSL 3.0 (Debian 12) in
 * test/probe/curl.test.ts.
 */

/** Marks the write-out line so the parser finds it even after a body printed without a final newline. */
const MARK = '@@fieldlab-curl@@';

/**
 * Arguments that make curl print its timers as one JSON line (`%{json}`, curl ≥ 7.70) after the body.
 * `trace: true` also asks for `-v --trace-time` on stderr, which lets `parseCurlTimings` split a proxy
 * CONNECT from the TLS handshake that follows it (curl has no timer between them).
 */
export function curlTimingArgs(opts: { trace?: boolean } = {}): string[] {
  return ['-w', `\\n${MARK}%{json}\\n`, ...(opts.trace ? ['-v', '--trace-time'] : [])];
}

/** What curl's `%{json}` write-out says, in the fields the harness uses. */
export interface CurlTimings {
  phases: Phase[];
  /** Final HTTP status (0 / absent when no response came). */
  httpCode?: number;
  /** The proxy's answer to CONNECT (absent when no CONNECT was made). */
  httpConnect?: number;
  exitCode?: number;
  errorMessage?: string;
  remote?: string;
  /** true when curl tunnelled through a proxy. Without a `--trace-time` stderr to split them, the
   * `proxy-connect` phase then also covers the TLS handshake with the target (curl has no timer
   * between the CONNECT reply and the TLS start); `tunnelSplit` says whether they were split. */
  viaProxy: boolean;
  tunnelSplit: boolean;
  totalMs: number;
  raw: Record<string, unknown>;
}

function num(raw: Record<string, unknown>, key: string): number {
  const v = raw[key];
  return typeof v === 'number' && Number.isFinite(v) ? v : 0;
}

/**
 * Parses the write-out added by `curlTimingArgs()` (the last marked line wins). Undefined when there is
 * none (curl never ran, or was killed before printing).
 *
 * curl's timers are seconds from the start of the transfer, each cumulative (curl docs,
 * CURLINFO_*_TIME): namelookup ≤ connect ≤ appconnect ≤ pretransfer ≤ starttransfer ≤ total. Phases:
 *   dns          0 → namelookup
 *   tcp          namelookup → connect            (to the proxy when one is used)
 *   proxy-connect connect → appconnect|pretransfer  (CONNECT; with https, also the TLS handshake,
 *                unless a `--trace-time` stderr is given: then CONNECT ends at "CONNECT tunnel
 *                established" and tls runs from there to appconnect)
 *   tls          connect → appconnect            (no proxy)
 *   first-byte   pretransfer → starttransfer     (request sent, waiting for the answer)
 *   transfer     starttransfer → total
 * A timer of 0 means "not reached"; curl 7.88 also zeroes connect/appconnect when the TLS handshake or
 * the CONNECT fails, so the failed phase then starts at the last timer curl kept and has no end.
 */
export function parseCurlTimings(stdout: string, stderr?: string): CurlTimings | undefined {
  const at = stdout.lastIndexOf(MARK);
  let line: string | undefined;
  if (at >= 0) line = stdout.slice(at + MARK.length).split('\n')[0];
  else line = stdout.split('\n').findLast((l) => l.startsWith('{') && l.includes('"time_total"'));
  if (!line) return undefined;
  let raw: Record<string, unknown>;
  try {
    raw = JSON.parse(line) as Record<string, unknown>;
  } catch {
    return undefined;
  }
  if (typeof raw.time_total !== 'number') return undefined;
  const ms = (k: string) => num(raw, k) * 1000;
  const t = {
    dns: ms('time_namelookup'),
    connect: ms('time_connect'),
    app: ms('time_appconnect'),
    pre: ms('time_pretransfer'),
    start: ms('time_starttransfer'),
    total: ms('time_total'),
  };
  const exitCode = typeof raw.exitcode === 'number' ? raw.exitcode : undefined;
  const httpConnect = num(raw, 'http_connect') || undefined;
  const httpCode = num(raw, 'http_code') || undefined;
  const viaProxy = httpConnect !== undefined;
  const phases: Phase[] = [];
  let last = 0;
  const add = (name: PhaseName, end: number) => {
    phases.push({ name, start: last, end });
    last = end;
  };
  if (t.dns > 0) add('dns', t.dns);
  if (t.connect > 0) add('tcp', t.connect);
  const tunnel = viaProxy && stderr ? tunnelTime(stderr, t.connect) : undefined;
  const tunnelSplit = tunnel !== undefined && t.app > 0 && tunnel > t.connect && tunnel < t.app;
  if (tunnelSplit) {
    add('proxy-connect', tunnel);
    add('tls', t.app);
  } else if (t.app > 0) add(viaProxy ? 'proxy-connect' : 'tls', t.app);
  else if (viaProxy && t.pre > 0) add('proxy-connect', t.pre);
  if (t.start > 0) {
    last = Math.max(last, t.pre);
    add('first-byte', t.start);
    if (t.total >= t.start) add('transfer', t.total);
  }
  if (exitCode !== undefined && exitCode !== 0) {
    const open = failedPhase(exitCode, t, raw.scheme, viaProxy, httpConnect);
    if (open === 'first-byte') last = Math.max(last, t.pre);
    if (!phases.some((p) => p.name === open)) phases.push({ name: open, start: last });
  }
  const out: CurlTimings = { phases, viaProxy, tunnelSplit, totalMs: t.total, raw };
  if (httpCode !== undefined) out.httpCode = httpCode;
  if (httpConnect !== undefined) out.httpConnect = httpConnect;
  if (exitCode !== undefined) out.exitCode = exitCode;
  if (typeof raw.errormsg === 'string') out.errorMessage = raw.errormsg;
  if (typeof raw.remote_ip === 'string' && raw.remote_ip)
    out.remote = `${raw.remote_ip}:${num(raw, 'remote_port')}`;
  return out;
}

/** `HH:MM:SS.micro` from a `--trace-time` line, in ms since midnight. */
function traceClock(line: string): number | undefined {
  const m = /^(\d{2}):(\d{2}):(\d{2})\.(\d{6}) /.exec(line);
  if (!m) return undefined;
  return ((Number(m[1]) * 60 + Number(m[2])) * 60 + Number(m[3])) * 1000 + Number(m[4]) / 1000;
}

/**
 * When the CONNECT tunnel was up, in ms from the transfer's start: the trace's clock is anchored on the
 * "Connected to" line, which is the moment `time_connect` measures.
 */
function tunnelTime(stderr: string, connectMs: number): number | undefined {
  if (connectMs <= 0) return undefined;
  let connected: number | undefined;
  let tunnel: number | undefined;
  for (const line of stderr.split('\n')) {
    if (connected === undefined && /\* Connected to /.test(line)) connected = traceClock(line);
    else if (
      connected !== undefined &&
      /\* CONNECT tunnel established|\* CONNECT phase completed/.test(line)
    ) {
      tunnel = traceClock(line);
      break;
    }
  }
  if (connected === undefined || tunnel === undefined) return undefined;
  let delta = tunnel - connected;
  if (delta < 0) delta += 86_400_000; // crossed midnight
  return connectMs + delta;
}

/** The phase a failed transfer was in: from its exit code (libcurl-errors(3)), else from the timers. */
function failedPhase(
  code: number,
  t: { dns: number; connect: number; pre: number; start: number },
  scheme: unknown,
  viaProxy: boolean,
  httpConnect?: number,
): PhaseName {
  if (code === 6 || code === 5) return 'dns';
  if (code === 7) return 'tcp';
  if (httpConnect !== undefined && httpConnect >= 300) return 'proxy-connect';
  if (code === 35 || code === 60 || code === 58 || code === 59 || code === 51)
    return viaProxy ? 'proxy-connect' : 'tls';
  if (code === 97) return 'proxy-connect';
  if (t.start > 0) return 'transfer';
  if (t.pre > 0) return 'first-byte';
  if (t.connect > 0)
    return viaProxy ? 'proxy-connect' : String(scheme).toUpperCase() === 'HTTPS' ? 'tls' : 'first-byte';
  return t.dns > 0 ? 'tcp' : 'dns';
}

/** The proxy a curl command line uses (`-x`, `--proxy`), if any. */
export function curlProxyArg(argv: readonly string[]): string | undefined {
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '-x' || a === '--proxy') return argv[i + 1];
    if (a.startsWith('--proxy=')) return a.slice(8);
    if (/^-x\S/.test(a)) return a.slice(2);
  }
  return undefined;
}

export interface CurlContext {
  /** The proxy URL when it came from the environment (https_proxy...) rather than `-x`. */
  proxy?: string;
}

function hostPortOf(proxy: string): { scheme: string; host: string; port: string } | undefined {
  try {
    const u = new URL(proxy.includes('://') ? proxy : `http://${proxy}`);
    const scheme = u.protocol.replace(':', '');
    const port = u.port || (scheme === 'https' ? '443' : '1080');
    return { scheme, host: u.hostname.replace(/^\[|\]$/g, ''), port };
  } catch {
    return undefined;
  }
}

const fail = (cls: FailureClass, detail: string, evidence?: string[]): Verdict => ({
  ok: false,
  class: cls,
  detail,
  ...(evidence?.length ? { evidence } : {}),
});

/** curl's `curl: (N) message` line, or the JSON errormsg. */
function curlMessage(result: CommandResult): string {
  const line = result.stderr.split('\n').findLast((l) => /^curl: \(\d+\)/.test(l));
  if (line) return line.replace(/^curl: \(\d+\)\s*/, '');
  return parseCurlTimings(result.stdout)?.errorMessage ?? result.stderr.trim().split('\n').at(-1) ?? '';
}

/** Certificate verification messages (OpenSSL X509_verify_cert_error_string) → classes. */
const CERT_RULES: [RegExp, FailureClass][] = [
  [
    /no alternative certificate subject name|subject name .* does not match|does not match target host/i,
    'tls.hostname-mismatch',
  ],
  [/certificate has expired/i, 'tls.expired'],
  [/certificate is not yet valid/i, 'tls.not-yet-valid'],
  // OpenSSL says "unable to verify the first certificate" (error 21) when the server sent only its leaf
  // and the issuer is not in the store: the usual missing-intermediate case.
  [/unable to verify the first certificate/i, 'tls.incomplete-chain'],
  // "unable to get local issuer certificate" (20) is what curl reports both for an unknown root and for
  // a leaf-only chain (verified): we say untrusted-root; evidence from the lab may refine it.
  [
    /self[- ]signed certificate|unable to get (local )?issuer|certificate signature failure/i,
    'tls.untrusted-root',
  ],
];

const NON_TLS_PEER =
  /wrong version number|packet length too long|record layer failure|unknown protocol|http request/i;

/**
 * Maps a finished curl run to a verdict: exit code first (libcurl-errors(3)), then curl's message for
 * the codes that cover several causes. Proxy failures are told apart by `http_connect` in the write-out
 * and by which address curl failed to reach.
 */
export function classifyCurl(result: CommandResult, ctx: CurlContext = {}): Verdict {
  if (result.spawnError) return fail('client.error', result.spawnError);
  const timings = parseCurlTimings(result.stdout);
  if (result.timedOut)
    return fail('client.timeout', `curl did not finish in ${Math.round(result.durationMs)} ms`);
  const code = result.exitCode ?? timings?.exitCode;
  if (code === 0) return { ok: true, ...(timings?.httpCode ? { detail: `HTTP ${timings.httpCode}` } : {}) };
  if (code === null || code === undefined)
    return fail('client.error', `curl was killed by ${result.signal ?? 'a signal'}`);
  const msg = curlMessage(result);
  const detail = `curl exit ${code}: ${msg}`;
  const proxyUrl = curlProxyArg(result.argv) ?? ctx.proxy;
  const proxy = proxyUrl ? hostPortOf(proxyUrl) : undefined;
  const connectStatus =
    timings?.httpConnect ??
    Number(
      /CONNECT tunnel failed, response (\d{3})|HTTP code (\d{3}) from proxy/i
        .exec(msg)
        ?.slice(1)
        .find(Boolean) ?? 0,
    );

  if (connectStatus >= 300) return proxyStatus(connectStatus, detail);
  switch (code) {
    case 5:
      return fail('proxy.unreachable', detail);
    case 6:
      return fail('dns.nxdomain', detail);
    case 7: {
      const m = /Failed to connect to (\S+) port (\d+)/i.exec(msg);
      const isProxy =
        proxy && m && (m[1] === proxy.host || m[1] === `[${proxy.host}]`) && m[2] === proxy.port;
      if (/no route to host|network is unreachable/i.test(msg)) return fail('tcp.unreachable', detail);
      return fail(isProxy ? 'proxy.unreachable' : 'tcp.refused', detail);
    }
    case 28:
      if (/resolving timed out/i.test(msg)) return fail('dns.timeout', detail);
      return fail('tcp.timeout', detail);
    case 22: {
      const status = timings?.httpCode ?? Number(/error: (\d{3})/.exec(msg)?.[1] ?? 0);
      return fail('http.status', status ? `HTTP ${status} (${detail})` : detail);
    }
    case 35:
      if (/reset by peer/i.test(msg)) return fail('tcp.reset', detail);
      if (NON_TLS_PEER.test(msg)) {
        return proxy?.scheme === 'https'
          ? fail('proxy.scheme-mismatch', detail, [
              `the proxy URL ${proxyUrl} says https but the proxy speaks plain HTTP`,
            ])
          : fail('tls.handshake', detail, ['the peer does not speak TLS on that port']);
      }
      if (/alert certificate required|alert handshake failure.*certificate|certificate required/i.test(msg)) {
        return fail('tls.client-cert-required', detail);
      }
      return fail('tls.handshake', detail);
    case 60:
    case 51:
    case 83: {
      for (const [re, cls] of CERT_RULES) if (re.test(msg)) return fail(cls, detail);
      return fail('tls.untrusted-root', detail);
    }
    case 52:
      return fail('tcp.reset', detail, ['the server closed the connection without answering']);
    case 55:
    case 56:
      if (/reset by peer|broken pipe/i.test(msg)) return fail('tcp.reset', detail);
      // Verified: a plain CONNECT sent to a TLS-only port is dropped by the TLS server without a reply.
      if (/Proxy CONNECT aborted/i.test(msg)) {
        return fail('proxy.scheme-mismatch', detail, [
          'the proxy closed without answering CONNECT: is it a TLS port?',
        ]);
      }
      return fail('tcp.reset', detail);
    case 97:
      return fail('proxy.unreachable', detail, ['the proxy handshake failed']);
    default:
      return fail('client.error', detail);
  }
}

function proxyStatus(status: number, detail: string): Verdict {
  if (status === 407) return fail('proxy.auth-required', detail);
  if (status === 403) return fail('proxy.connect-denied', detail);
  if (status === 502 || status === 504) return fail('proxy.bad-gateway', detail);
  return fail('proxy.connect-denied', detail, [`the proxy answered CONNECT with ${status}`]);
}
