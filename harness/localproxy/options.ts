import { z } from 'zod';
import { FieldlabError } from '../../simulators/common/errors.js';
import { hostPort } from '../../simulators/common/net.js';
import { parseTarget, type Target } from '../../simulators/common/targets.js';

/**
 * Options of the TypeScript localproxy, named after the AWS localproxy's flags
 * (aws-samples/aws-iot-securetunneling-localproxy, README "Options").
 */

/** Subprotocols by protocol version (V1/V2/V3 WebSocket protocol guides). */
export const SUBPROTOCOLS = {
  1: 'aws.iot.securetunneling-1.0',
  2: 'aws.iot.securetunneling-2.0',
  3: 'aws.iot.securetunneling-3.0',
} as const;
export type ProtocolVersion = keyof typeof SUBPROTOCOLS;

const modeSchema = z
  .enum(['src', 'dst', 'source', 'destination'])
  .transform((m): 'source' | 'destination' => (m === 'src' || m === 'source' ? 'source' : 'destination'));

export const localProxyOptionsSchema = z
  .object({
    /** Event source name. */
    name: z.string().min(1).default('localproxy'),
    /** `-m`: source (listens locally) or destination (connects to the local app). */
    mode: modeSchema,
    /** `-t` / AWSIOT_TUNNEL_ACCESS_TOKEN. */
    accessToken: z.string().min(1),
    /** `-i`: lets the same client reconnect with a used token. */
    clientToken: z
      .string()
      .regex(/^[a-zA-Z0-9-]{32,128}$/, 'client token must match ^[a-zA-Z0-9-]{32,128}$')
      .optional(),
    /**
     * `-e host[:port]` (no scheme, port 443 by default). Lab extension: a `ws://` or `wss://` prefix picks
     * plain WebSocket or TLS (the AWS localproxy always uses TLS).
     */
    endpoint: z.string().min(1).optional(),
    /** `-r`: endpoint `data.tunneling.iot.<region>.amazonaws.com:443` when `endpoint` is absent. */
    region: z.string().min(1).optional(),
    /** Plain `ws://` instead of TLS (lab only; an `endpoint` scheme wins). */
    tls: z.boolean().default(true),
    /** `-c`: a directory of CA certificates (`openssl rehash`-ed); every certificate in it is trusted. */
    caPath: z.string().min(1).optional(),
    /** Extra trusted roots (PEM), added to the system roots (library use). */
    ca: z.array(z.string()).optional(),
    /** `-k`: no certificate verification of the service (as the AWS localproxy's verify_none). */
    noSslHostVerify: z.boolean().default(false),
    /** `-s [ID=]port[,ID=port]` (source); port 0 picks a free port (lab). */
    sourceListenPort: z
      .union([z.string(), z.record(z.string(), z.number().int().min(0).max(65535))])
      .optional(),
    /** `-d [ID=]host:port[,...]` (destination); a bare port means 127.0.0.1, or the `-b` address. */
    destinationApp: z.union([z.string(), z.record(z.string(), z.string())]).optional(),
    /** `-b`: listen address (source); in destination mode the host of a port-only `-d`, as localproxy. */
    bindAddress: z.string().min(1).optional(),
    /**
     * `-y`: the message format of an older peer, as localproxy 3.x: V1 leaves out service ids and
     * connection ids, V2 connection ids (one connection per stream); V3 by default. It does not change
     * the subprotocol (see `subprotocol`).
     */
    destinationClientType: z
      .enum(['V1', 'V2', 'V3', 'v1', 'v2', 'v3'])
      .transform((v) => Number(v.slice(1)) as ProtocolVersion)
      .default(3),
    /**
     * Lab extension: the WebSocket subprotocol offered, 1–3. localproxy always offers
     * `aws.iot.securetunneling-3.0` (the default); 1 or 2 act as an older client (Device Client's V1).
     * A 1.0 session gets no SERVICE_IDS.
     */
    subprotocol: z.union([z.literal(1), z.literal(2), z.literal(3)]).default(3),
    /** HTTP CONNECT proxy `http://[user:pass@]host:port` (the CLI takes it from HTTPS_PROXY/https_proxy). */
    httpsProxy: z.string().min(1).optional(),
    /** WebSocket ping interval (the AWS localproxy pings every 20 s). */
    pingIntervalMs: z.number().int().positive().default(20_000),
    /** Delay between attempts after a 5xx, a TLS failure or a refused TCP connection. */
    retryDelayMs: z.number().int().min(0).default(2_500),
    /** Attempts after a failure before giving up (unbounded by default, as the AWS localproxy). */
    maxRetries: z.number().int().min(0).default(Number.POSITIVE_INFINITY),
    /** Bound on TCP + proxy + TLS + WebSocket handshake of one attempt. */
    connectTimeoutMs: z.number().int().positive().default(10_000),
    /** Pause local TCP reads while the WebSocket has more than this unsent. */
    highWaterMark: z
      .number()
      .int()
      .positive()
      .default(4 << 20),
    /**
     * Masks client frames with a zero key (RFC 6455 §5.3 allows any key; a random one only protects
     * browsers from cache poisoning): payloads then go to the socket as they came, never copied. Off:
     * random keys, as the AWS localproxy (a copy per byte).
     */
    zeroMask: z.boolean().default(true),
  })
  .strict()
  .refine((o) => o.destinationClientType <= o.subprotocol, {
    path: ['destinationClientType'],
    message: 'a message format newer than the subprotocol: -y must not exceed subprotocol',
  });

export type LocalProxyOptions = z.input<typeof localProxyOptionsSchema>;
export type ResolvedLocalProxyOptions = z.output<typeof localProxyOptionsSchema>;

function badOption(field: string, message: string, hint: string): FieldlabError {
  return new FieldlabError('E_BAD_OPTION', `localproxy: options.${field}: ${message}`, {
    where: 'localproxy options',
    hint,
  });
}

/** Where the WebSocket goes: host, port and whether it is TLS. */
export interface ServiceEndpoint extends Target {
  tls: boolean;
}

/** `-e` / `-r` to an endpoint (`-e` wins, as the AWS localproxy). */
export function resolveEndpoint(o: ResolvedLocalProxyOptions): ServiceEndpoint {
  if (o.endpoint === undefined) {
    if (o.region === undefined) {
      throw badOption(
        'endpoint',
        'neither endpoint (-e) nor region (-r) given',
        'give -r <region> or -e host:port',
      );
    }
    return { host: `data.tunneling.iot.${o.region}.amazonaws.com`, port: 443, tls: o.tls };
  }
  let raw = o.endpoint;
  let tls = o.tls;
  const scheme = /^(wss?):\/\//i.exec(raw);
  if (scheme) {
    tls = scheme[1]?.toLowerCase() === 'wss';
    raw = raw.slice(scheme[0].length).replace(/\/$/, '');
  }
  const target = parseTarget(raw.includes(':') && !raw.endsWith(']') ? raw : `${raw}:${tls ? 443 : 80}`);
  if (!target) {
    throw badOption('endpoint', `"${o.endpoint}" is not host[:port]`, 'e.g. -e 127.0.0.1:8443 (no scheme)');
  }
  return { ...target, tls };
}

/** `-s ssh=5555,http=8080` or `-s 5555` → service id ('' when unnamed) → port. */
export function parseSourcePorts(input: ResolvedLocalProxyOptions['sourceListenPort']): Map<string, number> {
  const out = new Map<string, number>();
  if (input === undefined) return out;
  if (typeof input !== 'string') {
    for (const [id, port] of Object.entries(input)) out.set(id, port);
    return out;
  }
  for (const part of input.split(',').map((p) => p.trim())) {
    if (part === '') continue;
    const eq = part.lastIndexOf('=');
    const id = eq >= 0 ? part.slice(0, eq) : '';
    const portText = eq >= 0 ? part.slice(eq + 1) : part;
    // Accept `ID=host:port` too (newer localproxy): the host part is the listen address.
    const port = Number(portText.includes(':') ? portText.slice(portText.lastIndexOf(':') + 1) : portText);
    if (!/^\d{1,5}$/.test(String(port)) || port > 65535) {
      throw badOption(
        'sourceListenPort',
        `"${part}" is not [ID=]port`,
        'e.g. -s 5555 or -s ssh=5555,http=8080',
      );
    }
    if (out.has(id))
      throw badOption('sourceListenPort', `service "${id}" given twice`, 'one port per service id');
    out.set(id, port);
  }
  return out;
}

/** `-d ssh=host:22,http=8080` or `-d host:22` → service id ('' when unnamed) → target. */
export function parseDestinationApps(
  input: ResolvedLocalProxyOptions['destinationApp'],
  defaultHost = '127.0.0.1',
): Map<string, Target> {
  const out = new Map<string, Target>();
  if (input === undefined) return out;
  const entries: Array<[string, string]> =
    typeof input === 'string'
      ? input
          .split(',')
          .map((p) => p.trim())
          .filter((p) => p !== '')
          .map((p) => {
            // `ID=host:port`: the id never contains ':' (an IPv6 host may contain '=' never).
            const eq = p.indexOf('=');
            return eq >= 0 && !p.slice(0, eq).includes(':') ? [p.slice(0, eq), p.slice(eq + 1)] : ['', p];
          })
      : Object.entries(input);
  for (const [id, raw] of entries) {
    // localproxy: a bare port connects to 127.0.0.1 (or -b), never `localhost`, which may be ::1 first.
    const target = parseTarget(/^\d{1,5}$/.test(raw) ? hostPort(defaultHost, Number(raw)) : raw);
    if (!target) {
      throw badOption(
        'destinationApp',
        `"${raw}" is not [ID=]host:port`,
        'e.g. -d 22 or -d ssh=127.0.0.1:22',
      );
    }
    if (out.has(id))
      throw badOption('destinationApp', `service "${id}" given twice`, 'one target per service id');
    out.set(id, target);
  }
  return out;
}

/** The configured key for a service id: its own entry, or the unnamed one when it is the only one. */
export function mappingKey<T>(map: ReadonlyMap<string, T>, serviceId: string): string | undefined {
  if (map.has(serviceId)) return serviceId;
  if (map.size === 1 && map.has('')) return '';
  return undefined;
}
