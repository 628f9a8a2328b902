import { lookup as dnsLookup } from 'node:dns';
import { isIP, type LookupFunction, connect as netConnect, type Socket } from 'node:net';
import { performance } from 'node:perf_hooks';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import type { FailureClass, Verdict } from './classes.js';
import { classifyError, classifyStatus } from './node-errors.js';
import type { Phase, PhaseName } from './phases.js';

/**
 * A built-in HTTPS probe with full phase timings, doing every step itself so each one is measured:
 *
 *   dns ─▶ tcp ─▶ [proxy tls] ─▶ proxy-connect (CONNECT) ─▶ tls ─▶ request ─▶ first-byte ─▶ transfer
 *
 * It never throws: every failure becomes a verdict, with the phase it stopped in left open.
 */

export interface HttpsProbeOptions {
  /** `https://host[:port]/path` (or `http://` to skip TLS). */
  url: string;
  /** `http://user:pass@host:port` (credentials percent-decoded); `https://` speaks TLS to the proxy. */
  proxy?: string;
  /** Trusted roots (PEM) for the target and an https:// proxy. Without it Node's bundled roots are used. */
  ca?: string[];
  /** Name resolution (e.g. the lab's); default dns.lookup. */
  lookup?: LookupFunction;
  timeoutMs: number;
  /** SNI and certificate name to check; default the URL's host. */
  servername?: string;
  method?: string;
  /** Stop reading the body after this many bytes (default 1 MiB). */
  maxBodyBytes?: number;
}

export interface HttpsProbeResult {
  verdict: Verdict;
  phases: Phase[];
  status?: number;
  durationMs: number;
}

class ProbeFailure extends Error {
  constructor(
    readonly cls: FailureClass,
    message: string,
  ) {
    super(message);
  }
}

function resolveHost(host: string, lookup: LookupFunction): Promise<string> {
  if (isIP(host.replace(/^\[|\]$/g, ''))) return Promise.resolve(host.replace(/^\[|\]$/g, ''));
  return new Promise((resolve, reject) => {
    lookup(host, { family: 0 }, (err, address) => {
      if (err) reject(err);
      else if (Array.isArray(address)) {
        const first = address[0];
        if (first) resolve(first.address);
        else reject(Object.assign(new Error(`no address for ${host}`), { code: 'ENOTFOUND' }));
      } else resolve(address);
    });
  });
}

function once<T>(emitter: Socket, ok: string, map: () => T): Promise<T> {
  return new Promise((resolve, reject) => {
    const onOk = () => {
      emitter.off('error', onErr);
      emitter.off('close', onClose);
      resolve(map());
    };
    const onErr = (e: Error) => {
      emitter.off(ok, onOk);
      emitter.off('close', onClose);
      reject(e);
    };
    const onClose = () => {
      emitter.off(ok, onOk);
      emitter.off('error', onErr);
      reject(Object.assign(new Error('socket closed'), { code: 'ECONNRESET' }));
    };
    emitter.once(ok, onOk);
    emitter.once('error', onErr);
    emitter.once('close', onClose);
  });
}

/** Reads an HTTP/1.x header block; resolves with the status, and pushes back any bytes after it. */
function readHead(sock: Socket, limit = 64 * 1024): Promise<{ status: number; head: string }> {
  return new Promise((resolve, reject) => {
    let buf = Buffer.alloc(0);
    const cleanup = () => {
      sock.off('data', onData);
      sock.off('error', onErr);
      sock.off('end', onEnd);
    };
    const onData = (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk]);
      const end = buf.indexOf('\r\n\r\n');
      if (end < 0) {
        if (buf.length > limit) {
          cleanup();
          reject(new Error('header block too large'));
        }
        return;
      }
      cleanup();
      sock.pause();
      const rest = buf.subarray(end + 4);
      if (rest.length) sock.unshift(rest);
      const head = buf.subarray(0, end).toString('latin1');
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(head);
      if (!m)
        reject(new ProbeFailure('client.error', `not an HTTP answer: ${JSON.stringify(head.slice(0, 60))}`));
      else resolve({ status: Number(m[1]), head });
    };
    const onErr = (e: Error) => {
      cleanup();
      reject(e);
    };
    const onEnd = () => {
      cleanup();
      reject(
        Object.assign(new Error('the peer closed before answering (socket hang up)'), { code: 'ECONNRESET' }),
      );
    };
    sock.on('data', onData);
    sock.once('error', onErr);
    sock.once('end', onEnd);
    sock.resume();
  });
}

function basic(user: string, pass: string): string {
  return Buffer.from(`${user}:${pass}`).toString('base64');
}

function decode(s: string): string {
  try {
    return decodeURIComponent(s);
  } catch {
    return s;
  }
}

/** Probes an HTTPS URL, optionally through a CONNECT proxy. Never throws. */
export async function probeHttps(opts: HttpsProbeOptions): Promise<HttpsProbeResult> {
  const t0 = performance.now();
  const now = () => performance.now() - t0;
  const phases: Phase[] = [];
  let current: Phase | undefined;
  const begin = (name: PhaseName) => {
    current = { name, start: now() };
    phases.push(current);
  };
  const end = () => {
    if (current) current.end = now();
    current = undefined;
  };
  const sockets: Socket[] = [];
  const own = <S extends Socket>(sock: S): S => {
    // Errors are read where each step awaits; this keeps a late one from crashing the process.
    sock.on('error', () => {});
    sockets.push(sock);
    return sock;
  };
  let status: number | undefined;
  let timer: NodeJS.Timeout | undefined;
  let viaProxyTls = false;

  const run = async (): Promise<Verdict> => {
    let url: URL;
    let proxy: URL | undefined;
    try {
      url = new URL(opts.url);
      proxy = opts.proxy ? new URL(opts.proxy) : undefined;
    } catch (err) {
      return { ok: false, class: 'client.error', detail: `bad URL: ${(err as Error).message}` };
    }
    const secure = url.protocol === 'https:';
    const host = url.hostname;
    const port = Number(url.port || (secure ? 443 : 80));
    const connectHost = proxy ? proxy.hostname : host;
    const connectPort = proxy ? Number(proxy.port || (proxy.protocol === 'https:' ? 443 : 80)) : port;

    begin('dns');
    const address = await resolveHost(connectHost, opts.lookup ?? (dnsLookup as LookupFunction)).catch(
      (e) => {
        throw Object.assign(e instanceof Error ? e : new Error(String(e)), { probeDns: true });
      },
    );
    end();

    begin('tcp');
    let sock: Socket = own(netConnect({ host: address, port: connectPort }));
    await once(sock, 'connect', () => undefined);
    end();

    if (proxy) {
      begin('proxy-connect');
      if (proxy.protocol === 'https:') {
        viaProxyTls = true;
        const t = own(
          tlsConnect({
            socket: sock,
            ...(isIP(proxy.hostname) ? {} : { servername: proxy.hostname }),
            host: proxy.hostname,
            ...(opts.ca ? { ca: opts.ca } : {}),
          }),
        );
        await once(t, 'secureConnect', () => undefined);
        sock = t;
        viaProxyTls = false;
      }
      const target = `${host.includes(':') ? `[${host}]` : host}:${port}`;
      const auth = proxy.username
        ? `Proxy-Authorization: Basic ${basic(decode(proxy.username), decode(proxy.password))}\r\n`
        : '';
      // RFC 9110 §9.3.6: CONNECT uses authority-form; the proxy answers 2xx then becomes a tunnel.
      sock.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n${auth}\r\n`);
      const answer = await readHead(sock).catch((e) => {
        throw Object.assign(e instanceof Error ? e : new Error(String(e)), { probeProxy: true });
      });
      if (answer.status < 200 || answer.status >= 300) {
        const v = classifyStatus(answer.status, { viaProxyConnect: true });
        const line = answer.head.split('\r\n')[0];
        throw new ProbeFailure(
          v.ok ? 'proxy.connect-denied' : v.class,
          `proxy answered CONNECT ${target}: ${line}`,
        );
      }
      end();
    }

    if (secure) {
      begin('tls');
      const servername = opts.servername ?? host;
      const t = own(
        tlsConnect({
          socket: sock,
          ...(isIP(servername) ? {} : { servername }),
          ...(opts.ca ? { ca: opts.ca } : {}),
          ALPNProtocols: ['http/1.1'],
          host: servername,
        }),
      );
      await once(t as TLSSocket, 'secureConnect', () => undefined);
      sock = t;
      end();
    }

    begin('first-byte');
    const path = `${url.pathname}${url.search}`;
    sock.write(
      `${opts.method ?? 'GET'} ${path} HTTP/1.1\r\nHost: ${url.host}\r\nUser-Agent: fieldlab-probe\r\n` +
        'Accept: */*\r\nConnection: close\r\n\r\n',
    );
    await new Promise<void>((resolve, reject) => {
      const onData = (c: Buffer) => {
        sock.off('error', reject);
        sock.off('end', onEnd);
        sock.pause();
        sock.unshift(c);
        resolve();
      };
      const onEnd = () => {
        sock.off('data', onData);
        reject(
          Object.assign(new Error('the server closed without answering (socket hang up)'), {
            code: 'ECONNRESET',
          }),
        );
      };
      sock.once('data', onData);
      sock.once('error', reject);
      sock.once('end', onEnd);
      sock.resume(); // paused after the CONNECT answer: a 'data' listener alone would not restart it
    });
    end();

    begin('transfer');
    const head = await readHead(sock);
    status = head.status;
    await new Promise<void>((resolve) => {
      let got = 0;
      const max = opts.maxBodyBytes ?? 1024 * 1024;
      const len = /\r\ncontent-length:\s*(\d+)/i.exec(head.head);
      const want = len ? Number(len[1]) : Number.POSITIVE_INFINITY;
      const done = () => {
        sock.off('data', onData);
        resolve();
      };
      const onData = (c: Buffer) => {
        got += c.length;
        if (got >= want || got >= max) done();
      };
      if (want === 0 || opts.method === 'HEAD') return resolve();
      sock.on('data', onData);
      sock.once('end', done);
      sock.once('close', done);
      sock.once('error', done);
      sock.resume();
    });
    end();
    return classifyStatus(status);
  };

  const timeout = new Promise<Verdict>((resolve) => {
    timer = setTimeout(() => {
      const where = current?.name ?? 'transfer';
      const cls: FailureClass = where === 'dns' ? 'dns.timeout' : 'tcp.timeout';
      resolve({ ok: false, class: cls, detail: `no progress in ${opts.timeoutMs} ms during ${where}` });
    }, opts.timeoutMs);
  });

  const attempt = run().catch((err: unknown): Verdict => {
    if (err instanceof ProbeFailure) return { ok: false, class: err.cls, detail: err.message };
    const inDns = typeof err === 'object' && err !== null && 'probeDns' in err;
    const v = classifyError(err, { viaProxy: viaProxyTls, dns: inDns });
    if (!v.ok && current?.name === 'proxy-connect' && v.class === 'tcp.reset') {
      return { ...v, evidence: [...(v.evidence ?? []), 'the proxy closed the connection during CONNECT'] };
    }
    if (!v.ok && viaProxyTls && v.class === 'tls.handshake') return { ...v, class: 'proxy.scheme-mismatch' };
    return v;
  });

  const verdict = await Promise.race([attempt, timeout]);
  clearTimeout(timer);
  for (const s of sockets) s.destroy();
  const result: HttpsProbeResult = { verdict, phases, durationMs: now() };
  if (status !== undefined) result.status = status;
  return result;
}
