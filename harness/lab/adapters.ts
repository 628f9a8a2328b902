import { X509Certificate } from 'node:crypto';
import type { Socket as UdpSocket } from 'node:dgram';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import type { LookupFunction } from 'node:net';
import { join } from 'node:path';
import { z } from 'zod';
import { type AwsIotHandle, start as startAwsIot } from '../../simulators/aws-iot/index.js';
import { type Destinations, destinationsSchema } from '../../simulators/common/destinations.js';
import { durationSchema } from '../../simulators/common/duration.js';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { type Endpoint, endpointOf } from '../../simulators/common/handle.js';
import { policyRuleSchema, start as startConnectProxy } from '../../simulators/connect-proxy/index.js';
import { geoDnsOptionsSchema, start as startGeoDns } from '../../simulators/geo-dns/index.js';
import { start as startHttpsServer } from '../../simulators/https-server/index.js';
import {
  type DpsHandle,
  type IotHubHandle,
  startDps,
  start as startIotHub,
} from '../../simulators/iot-hub/index.js';
import type { DpsTarget as KryptonDpsTarget } from '../../simulators/krypton/dps-client.js';
import {
  type IssueCertificateFn,
  kryptonOptionsSchema,
  start as startKrypton,
} from '../../simulators/krypton/index.js';
import {
  connectRateSchema,
  type MqttBrokerHandle,
  start as startMqttBroker,
} from '../../simulators/mqtt-broker/index.js';
import type { BadCertKind, PkiHandle } from '../../simulators/pki/index.js';
import { resolverOptionsSchema, start as startResolver } from '../../simulators/resolver/index.js';
import { start as startSshd } from '../../simulators/sshd/index.js';
import { start as startTlsInspector } from '../../simulators/tls-inspector/index.js';
import { start as startTunnelService } from '../../simulators/tunnel-service/index.js';
import { labDestinations } from './proxy-destinations.js';

/**
 * How a scenario's `type:` becomes a running simulator: each adapter validates the options a scenario
 * may write, then starts the simulator on the lab host's address with what the lab provides
 * (certificates from the lab PKI, other simulators' addresses). Adding a simulator type = one entry.
 */
export interface AdapterContext {
  /** Simulator name in the lab. */
  name: string;
  /** Lab host name (a DNS name) and its address. */
  hostName: string;
  address: string;
  pki: PkiHandle;
  labDir: string;
  /** Resolves lab names (and only those): for simulators that connect onwards, like proxies. */
  lookup: LookupFunction;
  /** Records a child process the simulator started, so `fieldlab clean` can end it after a crash. */
  trackProcess(pid: number, what: string): void;
  /**
   * netns backend: a listening socket bound at the simulator's own namespace address on `port` (default
   * the scenario's public port of the main endpoint), for a simulator that must see clients' real source
   * addresses (mark that endpoint `direct`). Absent on loopback.
   */
  bindPublic?(port?: number): Promise<object>;
  /** The same for UDP (a bound `dgram.Socket`), on `port`. */
  bindPublicUdp?(port: number): Promise<UdpSocket>;
  /** The public port the scenario gives the main endpoint (0: any). */
  publicPort: number;
  /**
   * A simulator of the same lab, by name, with its type (e.g. the hub a DPS assigns devices to): the
   * adapter checks the type and uses that simulator's own handle type.
   */
  peer(name: string): { type: string; handle: LabSimulatorHandle } | undefined;
}

/** What the lab needs of any simulator's handle (each simulator's own handle type has more). */
export interface LabSimulatorHandle {
  readonly name: string;
  readonly endpoints: readonly Endpoint[];
  readonly events: { onAny(listener: (e: LabEvent) => void): unknown };
  stats(): unknown;
  stop(): Promise<void>;
}

export interface StartedSimulator {
  handle: LabSimulatorHandle;
  /** Extra `${name.<var>}` values (file paths, URLs) scenarios may reference. */
  vars?: Record<string, string>;
  /** Endpoint names that must not be fronted by a relay (UDP, or ones the simulator must own). */
  direct?: string[];
  /** Called once every simulator of the lab runs, with the lab's host names and addresses. */
  labReady?(hosts: ReadonlyMap<string, string>): Promise<void>;
}

export interface SimulatorAdapter<S extends z.ZodType = z.ZodType> {
  type: string;
  /**
   * Its options hold addresses it hands to clients (DNS records): on the netns backend `${...}` in them
   * resolve as a client sees the lab (namespace addresses), not as simulators in this process do.
   */
  optionsForClients?: boolean;
  /** One line for `fieldlab list --simulators`. */
  summary: string;
  options: S;
  start(ctx: AdapterContext, options: z.output<S>): Promise<StartedSimulator>;
}

function adapter<S extends z.ZodType>(a: SimulatorAdapter<S>): SimulatorAdapter {
  return a as unknown as SimulatorAdapter;
}

const certKind = z.enum([
  'valid',
  'expired',
  'not-yet-valid',
  'wrong-host',
  'self-signed',
  'missing-intermediate',
  'unknown-root',
]);

const httpsServer = adapter({
  type: 'https-server',
  summary: 'an HTTPS endpoint with a lab certificate (or a bad one) and fixed routes',
  options: z
    .object({
      /** Which certificate it serves: a valid lab one, or a broken one. */
      cert: certKind.default('valid'),
      /** Require a client certificate from the lab CA. */
      mtls: z.boolean().default(false),
      routes: z
        .record(
          z.string(),
          z
            .object({
              status: z.number().int().optional(),
              body: z.string().optional(),
              headers: z.record(z.string(), z.string()).optional(),
            })
            .strict(),
        )
        .default({}),
    })
    .strict(),
  async start(ctx, o) {
    const names = [ctx.hostName, ctx.address];
    const issued =
      o.cert === 'valid' ? await ctx.pki.issueServer(names) : await ctx.pki.bad(o.cert as BadCertKind, names);
    const handle = await startHttpsServer({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      certPem: issued.chainPem,
      keyPem: issued.keyPem,
      ...(o.mtls ? { clientCa: [ctx.pki.root.certPem] } : {}),
      routes: o.routes,
    });
    return { handle, vars: { cert: issued.certPath } };
  },
});

const mqttBroker = adapter({
  type: 'mqtt-broker',
  summary: 'an MQTT broker (aedes) on mqtt, mqtts, ws and wss, with optional users and mutual TLS',
  options: z
    .object({
      listeners: z
        .array(
          z
            .object({ protocol: z.enum(['mqtt', 'mqtts', 'ws', 'wss']), path: z.string().optional() })
            .strict(),
        )
        .min(1)
        .default([{ protocol: 'mqtts' }]),
      users: z.array(z.object({ username: z.string(), password: z.string() }).strict()).optional(),
      mtls: z.boolean().default(false),
      alpn: z.array(z.string()).optional(),
      /** A cloud's connect throttle (AWS IoT: 500/s per account; IoT Hub S1: 100/s): CONNACK 0x03 over it. */
      connectRate: connectRateSchema.optional(),
    })
    .strict(),
  async start(ctx, o) {
    const needsTls = o.listeners.some((l) => l.protocol === 'mqtts' || l.protocol === 'wss');
    const issued = needsTls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    const handle = await startMqttBroker({
      name: ctx.name,
      host: ctx.address,
      listeners: o.listeners.map((l) => ({
        protocol: l.protocol,
        port: 0,
        ...(l.path ? { path: l.path } : {}),
      })),
      ...(issued
        ? {
            tls: {
              certPem: issued.chainPem,
              keyPem: issued.keyPem,
              ...(o.mtls ? { clientCa: [ctx.pki.root.certPem] } : {}),
              ...(o.alpn ? { alpn: o.alpn } : {}),
            },
          }
        : {}),
      ...(o.users ? { users: o.users } : {}),
      ...(o.connectRate ? { connectRate: o.connectRate } : {}),
    });
    return { handle };
  },
});

const credentials = z.object({ username: z.string(), password: z.string() }).strict();
const hostPortMap = z.record(z.string(), z.string());
/**
 * A lab proxy reaches the lab's hosts (names and addresses) and nothing else; these add more: names
 * (`*` wildcards), addresses, CIDRs, or `any` for an open proxy.
 */
const proxyDestinations = destinationsSchema.optional();

/** A lab proxy starts with the scenario's extra destinations; the lab's hosts join once all run. */
function proxyReady(
  ctx: AdapterContext,
  extra: z.output<typeof proxyDestinations>,
  handle: { setDestinations(d: Destinations): void },
): Pick<StartedSimulator, 'labReady'> {
  if (extra === 'any') return {};
  return {
    labReady: async (hosts) =>
      handle.setDestinations(await labDestinations(hosts, ctx.lookup, ctx.address, extra)),
  };
}

const connectProxy = adapter({
  type: 'connect-proxy',
  summary:
    'an HTTP CONNECT + forward proxy (Squid-like policy, Basic auth, target mapping, chaining, TLS listener)',
  options: z
    .object({
      /** Basic auth: these users (give the client http://user:pass@host:port, percent-encoded). */
      users: z.array(credentials).min(1).optional(),
      /** CONNECT only to these ports (Squid's SSL_ports; default [443]). */
      allowPorts: z.array(z.number().int().min(1).max(65535)).min(1).optional(),
      allowHosts: z.array(z.string()).min(1).optional(),
      denyHosts: z.array(z.string()).min(1).optional(),
      /** Ordered rules, first match wins (instead of the simple form above). */
      rules: z.array(policyRuleSchema).optional(),
      defaultAction: z.enum(['allow', 'deny']).optional(),
      /** `'host:port' → 'host:port'`: where an allowed request really goes (policy sees the original). */
      map: hostPortMap.default({}),
      /** Chain through another proxy, e.g. `http://${inspector.hostport}`. */
      upstream: z.string().optional(),
      /** Serve the proxy itself over TLS (an https:// proxy) with a lab certificate. */
      tls: z.boolean().default(false),
      destinations: proxyDestinations,
    })
    .strict(),
  async start(ctx, o) {
    const cert = o.tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    const handle = await startConnectProxy({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      map: o.map,
      lookup: ctx.lookup,
      ...(o.users ? { auth: { users: o.users } } : {}),
      ...(o.rules ? { rules: o.rules } : {}),
      ...(o.defaultAction ? { defaultAction: o.defaultAction } : {}),
      ...(o.allowPorts ? { allowPorts: o.allowPorts } : {}),
      ...(o.allowHosts ? { allowHosts: o.allowHosts } : {}),
      ...(o.denyHosts ? { denyHosts: o.denyHosts } : {}),
      ...(o.upstream ? { upstream: o.upstream } : {}),
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
      destinations: o.destinations ?? [],
    });
    return { handle, ...proxyReady(ctx, o.destinations, handle) };
  },
});

const tlsInspector = adapter({
  type: 'tls-inspector',
  summary: 'a TLS-intercepting proxy (Zscaler-like) that re-signs every server certificate with its own root',
  options: z
    .object({
      /** `'host:port' → 'host:port'`: where the inspector really connects (names and SNI are kept). */
      map: hostPortMap.default({}),
      /** Host patterns tunnelled without interception. */
      passthrough: z.array(z.string()).default([]),
      fault: z.enum(['none', 'expired', 'wrong-host', 'missing-intermediate']).default('none'),
      users: z.array(credentials).min(1).optional(),
      destinations: proxyDestinations,
    })
    .strict(),
  async start(ctx, o) {
    // Its own root, not in the lab trust: devices reject it until they are given it (the field fix).
    const ca = await ctx.pki.createAuthority('fieldlab Inspection Root CA', { intermediate: true });
    const handle = await startTlsInspector({
      name: ctx.name,
      host: ctx.address,
      port: 0,
      ca,
      upstreamCa: [ctx.pki.root.certPem],
      map: o.map,
      passthrough: o.passthrough,
      fault: o.fault,
      lookup: ctx.lookup,
      ...(o.users ? { auth: { users: o.users } } : {}),
      destinations: o.destinations ?? [],
    });
    const rootCa = join(ctx.labDir, `${ctx.name}-root.pem`);
    const bundle = join(ctx.labDir, `${ctx.name}-bundle.pem`);
    writeFileSync(rootCa, handle.rootPem);
    writeFileSync(bundle, `${ctx.pki.root.certPem.trim()}\n${handle.rootPem.trim()}\n`);
    return { handle, vars: { rootCa, bundle }, ...proxyReady(ctx, o.destinations, handle) };
  },
});

/** The fully qualified names a zone list declares records for (`@` = origin; a trailing dot = absolute). */
function declaredNames(
  zones: ReadonlyArray<{ origin: string; records?: ReadonlyArray<{ name: string }> }>,
): Set<string> {
  const out = new Set<string>();
  for (const z of zones) {
    const origin = z.origin.replace(/\.$/, '').toLowerCase();
    for (const r of z.records ?? []) {
      const n = r.name.toLowerCase();
      out.add(n === '@' ? origin : n.endsWith('.') ? n.slice(0, -1) : `${n}.${origin}`);
    }
  }
  return out;
}

const geoDns = adapter({
  type: 'geo-dns',
  summary:
    'authoritative DNS with Route 53 routing policies (geolocation, latency, weighted, failover), ECS and DNS faults',
  options: geoDnsOptionsSchema.omit({ name: true, host: true, port: true, bound: true }).strict(),
  optionsForClients: true,
  async start(ctx, o) {
    // On netns it serves inside its host's namespace, on port 53 unless the scenario says otherwise
    // (resolv.conf, which every namespace's programs read, takes no port).
    let bound: { udp: UdpSocket; tcp: object } | undefined;
    if (ctx.bindPublic && ctx.bindPublicUdp) {
      const port = ctx.publicPort || 53;
      const udp = await ctx.bindPublicUdp(port);
      bound = { udp, tcp: await ctx.bindPublic(port) };
    }
    const handle = await startGeoDns({
      ...o,
      name: ctx.name,
      host: ctx.address,
      port: 0,
      ...(bound ? { bound } : {}),
    });
    const declared = declaredNames(o.zones);
    return {
      handle,
      ...(bound ? { direct: ['dns-udp', 'dns-tcp'] } : {}),
      // The lab's own names are served too (unless the scenario's zones define them), so clients that
      // use this server resolve every lab host.
      async labReady(hosts) {
        const records = [...hosts]
          .filter(([name]) => !declared.has(name))
          .map(([name, address]) => ({ name: `${name}.`, type: 'A' as const, value: address }));
        if (records.length > 0) await handle.addRecords(records);
      },
    };
  },
});

const resolver = adapter({
  type: 'resolver',
  summary:
    'a forwarding DNS resolver persona (location, ECS on/off, cache by TTL and ECS scope, serve-stale, SERVFAIL on upstream timeout) on UDP/TCP, DoT and DoH',
  options: resolverOptionsSchema
    .pick({
      persona: true,
      location: true,
      ecs: true,
      hosts: true,
      hostsTtl: true,
      timeout: true,
      retries: true,
      cache: true,
      maxEntries: true,
      serveStale: true,
      maxStale: true,
    })
    .extend({
      /** Zones and where they go: a geo-dns of this lab by name (declared before), or `address:port`. */
      forward: z
        .array(z.object({ zone: z.string().min(1), to: z.array(z.string().min(1)).min(1) }).strict())
        .default([]),
      /** Serve DoT and DoH with a lab certificate for the host's name and address. */
      tls: z.boolean().default(true),
    })
    .strict(),
  async start(ctx, o) {
    const { forward, tls, ...rest } = o;
    const upstream = (to: string, where: string): string => {
      const peer = ctx.peer(to);
      const ep =
        peer?.type === 'geo-dns' ? peer.handle.endpoints.find((e) => e.name === 'dns-udp') : undefined;
      if (ep) return ep.host.includes(':') ? `[${ep.host}]:${ep.port}` : `${ep.host}:${ep.port}`;
      if (/:\d+$/.test(to)) return to;
      throw new FieldlabError(
        'E_BAD_OPTIONS',
        `${ctx.name} (resolver): options.${where}: no geo-dns named ${to}`,
        {
          hint: 'name a geo-dns simulator declared before this one in lab.simulators, or give address:port',
        },
      );
    };
    const cert = tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    const handle = await startResolver({
      ...rest,
      name: ctx.name,
      host: ctx.address,
      port: 0,
      forward: forward.map((f, i) => ({
        zone: f.zone,
        upstream: f.to.map((t, j) => upstream(t, `forward[${i}].to[${j}]`)),
      })),
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
    });
    return {
      handle,
      // ECS comes from the client's own address: no relay may stand in front
      direct: handle.endpoints.map((e) => e.name),
      async labReady(hosts) {
        handle.setHosts(Object.fromEntries([...hosts].filter(([name]) => !(name in o.hosts))));
      },
    };
  },
});

const tunnelService = adapter({
  type: 'tunnel-service',
  summary:
    'AWS IoT Secure Tunneling: management API (AWS SDK compatible) and the WebSocket data plane (v1–v3)',
  options: z
    .object({
      region: z.string().default('us-east-1'),
      /** Serve the data plane as wss with a lab certificate (the real service is TLS-only). */
      tls: z.boolean().default(true),
      maxOpenTunnels: z.number().int().positive().optional(),
      /** Overrides every tunnel's max lifetime. */
      maxLifetime: durationSchema.optional(),
      /**
       * Lab time scale (not an AWS setting): how long one minute of a tunnel's `maxLifetimeTimeoutMinutes`
       * lasts, e.g. `5s`, so a tunnel opened with 1 minute closes after 5 s (default 1m; at most 1m).
       */
      lifetimeMinute: durationSchema
        .refine((ms) => ms >= 1 && ms <= 60_000, 'a lab minute is between 1ms and 1m')
        .optional(),
      /** How long a closed tunnel stays visible to DescribeTunnel/ListTunnels (AWS: 3 hours). */
      closedTunnelRetention: durationSchema.optional(),
      /**
       * Management API authentication: `sigv4` verifies AWS Signature Version 4 against the lab
       * credentials and region (clients get `${name.accessKeyId}`, `${name.secretAccessKey}`, `${name.region}`).
       */
      auth: z.enum(['none', 'sigv4']).default('none'),
      /** The lab credentials for `auth: sigv4` (default: a fixed access key id and a random secret). */
      credentials: z
        .object({ accessKeyId: z.string().min(1).max(128), secretAccessKey: z.string().min(1).max(128) })
        .strict()
        .optional(),
      /** Per-tunnel relay quota, bytes/s (the real service publishes 800 KB/s per account). */
      bandwidthBytesPerSecond: z.number().int().positive().optional(),
      /**
       * A lab `mqtt-broker` or `aws-iot` simulator (by name): a tunnel opened for a thing publishes its
       * destination token there on `$aws/things/<thing>/tunnels/notify`, as AWS IoT does.
       */
      notify: z.string().optional(),
    })
    .strict(),
  async start(ctx, o) {
    const cert = o.tls ? await ctx.pki.issueServer([ctx.hostName, ctx.address]) : undefined;
    // Looked up when a tunnel opens: the broker may be declared after the tunnel service.
    const broker = (): MqttBrokerHandle | undefined => {
      // An mqtt-broker publishes itself; an aws-iot persona through the broker underneath it.
      const peer = ctx.peer(o.notify ?? '');
      if (peer?.type === 'mqtt-broker') return peer.handle as MqttBrokerHandle;
      if (peer?.type === 'aws-iot') return (peer.handle as AwsIotHandle).broker;
      return undefined;
    };
    const handle = await startTunnelService({
      name: ctx.name,
      host: ctx.address,
      region: o.region,
      ...(cert ? { tls: { certPem: cert.chainPem, keyPem: cert.keyPem } } : {}),
      ...(o.maxOpenTunnels ? { maxOpenTunnels: o.maxOpenTunnels } : {}),
      ...(o.maxLifetime ? { maxLifetimeMs: Math.max(1, Math.round(o.maxLifetime)) } : {}),
      ...(o.lifetimeMinute !== undefined
        ? { lifetimeMinuteMs: Math.max(1, Math.round(o.lifetimeMinute)) }
        : {}),
      ...(o.closedTunnelRetention !== undefined
        ? { closedTunnelRetentionMs: Math.round(o.closedTunnelRetention) }
        : {}),
      auth: o.auth,
      ...(o.credentials ? { credentials: o.credentials } : {}),
      ...(o.bandwidthBytesPerSecond ? { bandwidthBytesPerSecond: o.bandwidthBytesPerSecond } : {}),
      ...(o.notify !== undefined
        ? {
            notify: async (topic: string, payload: string) => {
              const b = broker();
              if (!b) throw new Error(`notify: no mqtt-broker or aws-iot simulator named ${o.notify}`);
              await b.publish(topic, payload, 1);
            },
          }
        : {}),
    });
    const { region, accessKeyId, secretAccessKey } = handle.apiClient;
    return {
      handle,
      // What a management API client is configured with (verified with auth: sigv4).
      vars: { region, accessKeyId, secretAccessKey },
      async labReady() {
        if (o.notify !== undefined && !broker()) {
          throw new FieldlabError(
            'E_BAD_OPTIONS',
            `${ctx.name} (tunnel-service): options.notify: no mqtt-broker or aws-iot simulator named ${o.notify}`,
            { hint: 'name a broker of the same lab' },
          );
        }
      },
    };
  },
});

const sshd = adapter({
  type: 'sshd',
  summary: "a real OpenSSH server (Debian's sshd) with throwaway keys, e.g. behind a secure tunnel",
  options: z.object({ authorizedKeys: z.array(z.string()).default([]) }).strict(),
  async start(ctx, o) {
    const handle = await startSshd({
      name: ctx.name,
      host: ctx.address,
      authorizedKeys: o.authorizedKeys,
      dir: ctx.labDir,
    });
    ctx.trackProcess(handle.pid, `sshd for ${ctx.name}`);
    return { handle, vars: { key: handle.clientKeyPath, user: handle.user } };
  },
});

/**
 * An Azure endpoint (iot-hub, dps) has three doors, mqtts (8883), amqps (5671) and https (443, also MQTT and
 * AMQP over WebSocket): `port` would move only the first, so `port: 443` would put MQTT on 443 and leave
 * https elsewhere. Refused, with the form that says which door gets which port.
 */
function refuseMainPort(ctx: AdapterContext, type: string): void {
  if (!ctx.publicPort) return;
  throw new FieldlabError(
    'E_BAD_OPTIONS',
    `${ctx.name} (${type}): port: ${ctx.publicPort} does not say which endpoint: a ${type} serves mqtts, amqps and https`,
    { hint: 'give each endpoint its port instead: ports: { https: 443, mqtts: 8883, amqps: 5671 }' },
  );
}

const iotHub = adapter({
  type: 'iot-hub',
  summary:
    'Azure IoT Hub: MQTT, AMQP, and MQTT/AMQP over WebSocket + HTTPS on one port; SAS and X.509 devices, modules, twins, methods, C2D',
  options: z
    .object({
      devices: z
        .array(
          z
            .object({
              deviceId: z.string(),
              primaryKey: z.string().optional(),
              /**
               * X.509 instead of a key: `ca: true` (the lab issues the device a certificate, CN = device id, from
               * the lab CA, which the hub has registered: `${name.cert-<deviceId>}` chain and
               * `${name.certKey-<deviceId>}` key files), or the `thumbprint` of the device's own certificate.
               */
              x509: z
                .union([
                  z.object({ ca: z.literal(true) }).strict(),
                  z.object({ thumbprint: z.string(), secondaryThumbprint: z.string().optional() }).strict(),
                ])
                .optional(),
              /** Module identities (SAS): `${name.cs-<deviceId>/<moduleId>}` is each one's connection string. */
              modules: z
                .array(z.object({ moduleId: z.string(), primaryKey: z.string().optional() }).strict())
                .default([]),
            })
            .strict(),
        )
        .default([]),
    })
    .strict(),
  async start(ctx, o) {
    refuseMainPort(ctx, 'iot-hub');
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    const handle = await startIotHub({
      name: ctx.name,
      host: ctx.address,
      hostName: ctx.hostName,
      tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
      devices: o.devices,
      // The lab CA is the one CA registered (and verified) in the lab hub.
      caCertificates: [ctx.pki.root.certPem],
    });
    // `${hub.connectionString}` is the first device's; `${hub.cs-<deviceId>}` any device's,
    // `${hub.cs-<deviceId>/<moduleId>}` a module's.
    const vars: Record<string, string> = {};
    for (const d of o.devices) {
      vars[`cs-${d.deviceId}`] = handle.connectionString(d.deviceId);
      for (const m of d.modules) {
        vars[`cs-${d.deviceId}/${m.moduleId}`] = handle.moduleConnectionString(d.deviceId, m.moduleId);
      }
      if (d.x509 && 'ca' in d.x509) {
        const issued = await ctx.pki.issueClient(d.deviceId, {
          file: join(ctx.labDir, `${ctx.name}-${d.deviceId}`),
        });
        vars[`cert-${d.deviceId}`] = issued.chainPath;
        vars[`certKey-${d.deviceId}`] = issued.keyPath;
      }
    }
    const first = o.devices[0]?.deviceId;
    if (first) vars.connectionString = handle.connectionString(first);
    return { handle, vars };
  },
});

/** A dps enrollment's allocation in a scenario: policy, and the lab hubs (by simulator name) it may use. */
const dpsAllocation = {
  allocationPolicy: z.enum(['hashed', 'static']).optional(),
  iotHubs: z.array(z.string()).min(1).optional(),
};

const dps = adapter({
  type: 'dps',
  summary:
    'Azure IoT Hub Device Provisioning Service: MQTT, AMQP, HTTPS; symmetric-key and X.509 enrollments and groups',
  options: z
    .object({
      /** The lab iot-hub simulator (by name) that registrations are assigned to. */
      hub: z.string(),
      idScope: z.string().default('0ne00FAB001'),
      /**
       * Individual enrollments: symmetric key, or `x509: true` (the lab issues the device certificate, CN =
       * registration id, enrolled by thumbprint: `${name.cert-<registrationId>}`, `${name.certKey-<registrationId>}`).
       */
      enrollments: z
        .array(
          z
            .object({
              registrationId: z.string(),
              primaryKey: z.string().optional(),
              x509: z.boolean().optional(),
              ...dpsAllocation,
            })
            .strict(),
        )
        .default([]),
      /**
       * Group enrollments: a device's key is HMAC-SHA256(group key, registration id); or `x509: true`, the
       * lab intermediate CA as the group's signing certificate (devices present lab-issued chains).
       */
      groups: z
        .array(
          z
            .object({
              groupId: z.string(),
              primaryKey: z.string().optional(),
              x509: z.boolean().optional(),
              ...dpsAllocation,
            })
            .strict(),
        )
        .default([]),
      /** More lab iot-hub simulators (by name) linked to this DPS: allocation spreads devices over all. */
      linkedHubs: z.array(z.string()).default([]),
      /** How enrollments that name no policy pick a hub: hashed (even spread by registration id) or static. */
      allocationPolicy: z.enum(['hashed', 'static']).default('hashed'),
    })
    .strict(),
  async start(ctx, o) {
    refuseMainPort(ctx, 'dps');
    const hubNamed = (name: string, where: string): IotHubHandle => {
      const peer = ctx.peer(name);
      if (peer?.type !== 'iot-hub') {
        throw new FieldlabError(
          'E_BAD_OPTIONS',
          `${ctx.name} (dps): options.${where}: no iot-hub named ${name}`,
          {
            hint: 'name an iot-hub simulator declared before this one in lab.simulators',
          },
        );
      }
      return peer.handle as IotHubHandle;
    };
    const primary = hubNamed(o.hub, 'hub');
    const linked = o.linkedHubs.map((n, i) => hubNamed(n, `linkedHubs[${i}]`));
    /** An enrollment's allocation, its hubs named by simulator as the DPS knows them (host names). */
    const allocation = (e: { allocationPolicy?: 'hashed' | 'static'; iotHubs?: string[] }, where: string) =>
      e.allocationPolicy || e.iotHubs
        ? {
            ...(e.allocationPolicy ? { allocationPolicy: e.allocationPolicy } : {}),
            ...(e.iotHubs ? { iotHubs: e.iotHubs.map((n) => hubNamed(n, `${where}.iotHubs`).hostName) } : {}),
          }
        : undefined;
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    const handle = await startDps({
      name: ctx.name,
      host: ctx.address,
      hostName: ctx.hostName,
      idScope: o.idScope,
      tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
      hub: primary,
      linkedHubs: linked,
      allocationPolicy: o.allocationPolicy,
    });
    // Registered here, not through startDps's options: the add* calls return the keys for
    // `${dps.idScope}`, `${dps.key-<registrationId>}`, `${dps.group-<groupId>}`.
    const vars: Record<string, string> = { idScope: handle.idScope };
    for (const [i, e] of o.enrollments.entries()) {
      if (!e.x509) vars[`key-${e.registrationId}`] = handle.addEnrollment(e.registrationId, e.primaryKey);
      else {
        const issued = await ctx.pki.issueClient(e.registrationId, {
          file: join(ctx.labDir, `${ctx.name}-${e.registrationId}`),
        });
        handle.addX509Enrollment(e.registrationId, new X509Certificate(issued.certPem).fingerprint256);
        vars[`cert-${e.registrationId}`] = issued.chainPath;
        vars[`certKey-${e.registrationId}`] = issued.keyPath;
      }
      const a = allocation(e, `enrollments[${i}]`);
      if (a) handle.setAllocation(e.registrationId, a);
    }
    for (const [i, g] of o.groups.entries()) {
      if (g.x509) handle.addX509Group(g.groupId, ctx.pki.intermediate.certPem);
      else vars[`group-${g.groupId}`] = handle.addGroup(g.groupId, g.primaryKey);
      const a = allocation(g, `groups[${i}]`);
      if (a) handle.setAllocation(g.groupId, a);
    }
    return { handle, vars };
  },
});

const krypton = adapter({
  type: 'krypton',
  summary: 'SORACOM Krypton provisioning (HTTPS :8036): credentials only for requests from the SIM network',
  options: z
    .object({
      /** Networks a request must come from. */
      allowedSources: kryptonOptionsSchema.shape.allowedSources,
      /**
       * A lab dps simulator (by name): Krypton registers each device there with X.509 attestation (a
       * certificate from the lab intermediate CA, which the DPS group enrollment `group` names) and hands
       * the device its certificate, key and assigned hub.
       */
      dps: z.string().optional(),
      /** The DPS X.509 group enrollment Krypton's devices register under (created if missing). */
      group: z.string().default('krypton'),
    })
    .strict(),
  async start(ctx, o) {
    const cert = await ctx.pki.issueServer([ctx.hostName, ctx.address]);
    let dps: { target: KryptonDpsTarget; issue: IssueCertificateFn } | undefined;
    if (o.dps !== undefined) {
      const peer = ctx.peer(o.dps);
      if (peer?.type !== 'dps') {
        throw new FieldlabError(
          'E_BAD_OPTIONS',
          `${ctx.name} (krypton): options.dps: no dps named ${o.dps}`,
          {
            hint: 'name a dps simulator declared before this one in lab.simulators',
          },
        );
      }
      const target = peer.handle as DpsHandle;
      target.addX509Group(o.group, ctx.pki.intermediate.certPem);
      // Krypton is the DPS's HTTPS client: it reaches the DPS where the lab serves it.
      const ep = endpointOf(target, 'https');
      dps = {
        target: {
          host: ep.host,
          port: ep.port,
          hostName: target.hostName,
          idScope: target.idScope,
          caPem: ctx.pki.root.certPem,
        },
        issue: async (registrationId) => {
          const c = await ctx.pki.issueClient(registrationId);
          return { certPem: c.chainPem, keyPem: c.keyPem };
        },
      };
    }
    // On the netns backend Krypton binds in its own namespace: it must see the device's real source.
    const listenHandle = ctx.bindPublic ? await ctx.bindPublic() : undefined;
    const handle = await startKrypton({
      name: ctx.name,
      host: ctx.address,
      certPem: cert.chainPem,
      keyPem: cert.keyPem,
      allowedSources: o.allowedSources,
      ...(dps ? { dps: dps.target, issueCertificate: dps.issue } : {}),
      ...(listenHandle ? { listenHandle } : {}),
    });
    return { handle, ...(listenHandle ? { direct: ['https'] } : {}) };
  },
});

/**
 * The lab's fleet-provisioning claim certificate: one per lab, registered in every AWS IoT region of
 * the lab (as a fleet's claim is registered in every region it may provision in).
 */
/**
 * The lab's JITP files, made once per lab: a device CA (registered in the regions whose aws-iot simulator
 * has `jitp`), a device certificate it signed, presented with the CA certificate as AWS's JITR guide says
 * (`jitpCert`; `jitpCertOnly` without it), and a device certificate from a CA registered nowhere (`rogueCert`).
 */
async function jitpFiles(ctx: AdapterContext): Promise<{ caPem: string; vars: Record<string, string> }> {
  const p = (f: string) => join(ctx.labDir, f);
  const vars = {
    jitpCa: p('jitp-ca.pem'),
    jitpCert: p('jitp-device-with-ca.pem'),
    jitpCertOnly: p('jitp-device.pem'),
    jitpKey: p('jitp-device-key.pem'),
    rogueCert: p('rogue-device-with-ca.pem'),
    rogueKey: p('rogue-device-key.pem'),
  };
  if (!existsSync(vars.jitpCa)) {
    const ca = await ctx.pki.createAuthority('fieldlab JITP Device CA');
    const rogueCa = await ctx.pki.createAuthority('fieldlab Unregistered Device CA');
    const dev = await ca.issueLeaf({ commonName: 'jitp-sensor-1', usage: 'client' });
    const rogue = await rogueCa.issueLeaf({ commonName: 'jitp-sensor-1', usage: 'client' });
    writeFileSync(vars.jitpCa, ca.certPem);
    writeFileSync(vars.jitpCert, dev.certPem + ca.certPem);
    writeFileSync(vars.jitpCertOnly, dev.certPem);
    writeFileSync(vars.jitpKey, dev.keyPem, { mode: 0o600 });
    writeFileSync(vars.rogueCert, rogue.certPem + rogueCa.certPem);
    writeFileSync(vars.rogueKey, rogue.keyPem, { mode: 0o600 });
  }
  return { caPem: readFileSync(vars.jitpCa, 'utf8'), vars };
}

/** Device Advisor's bad server certificate cases → the lab PKI's bad certificate kinds. */
const SERVER_CERT_CASES = {
  'wrong-san': 'wrong-host',
  expired: 'expired',
  'untrusted-ca': 'unknown-root',
  'missing-intermediate': 'missing-intermediate',
} as const satisfies Record<string, BadCertKind>;

async function fleetClaim(
  ctx: AdapterContext,
): Promise<{ certPath: string; keyPath: string; certPem: string }> {
  const certPath = join(ctx.labDir, 'fleet-claim.pem');
  const keyPath = join(ctx.labDir, 'fleet-claim-key.pem');
  if (!existsSync(certPath))
    await ctx.pki.issueClient('fleet-claim', { file: join(ctx.labDir, 'fleet-claim') });
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8') };
}

const awsIot = adapter({
  type: 'aws-iot',
  summary:
    'AWS IoT Core persona for one region: mTLS, registered certificates/CAs, fleet provisioning by claim, JITP, topic policy',
  options: z
    .object({
      region: z.string().default('us-east-1'),
      listeners: z
        .array(z.object({ protocol: z.enum(['mqtts', 'wss']) }).strict())
        .min(1)
        .default([{ protocol: 'mqtts' }]),
      /** Only clients offering ALPN `x-amzn-mqtt-ca` (MQTT on 443). */
      requireAlpn: z.boolean().default(false),
      /** Fleet provisioning templates: `{ FleetTemplate: { thingNameTemplate: 'dev-${SerialNumber}' } }`. */
      templates: z
        .record(
          z.string(),
          z
            .object({
              thingNameTemplate: z.string(),
              deviceConfiguration: z.record(z.string(), z.string()).optional(),
            })
            .strict(),
        )
        .default({}),
      /** Register the lab's fleet claim certificate (vars `${name.claimCert}`, `${name.claimKey}`). */
      claim: z.boolean().default(true),
      /**
       * Just-in-time provisioning: register the lab's JITP device CA in this region with auto-registration
       * and this template. Every aws-iot simulator offers the device files: `${name.jitpCert}` (device
       * certificate + CA, as the first connection must present), `${name.jitpCertOnly}`, `${name.jitpKey}`,
       * `${name.jitpCa}`, and `${name.rogueCert}`/`${name.rogueKey}` (from a CA registered nowhere).
       */
      jitp: z
        .object({
          templateName: z.string().min(1).default('JITPTemplate'),
          /** From the certificate: `${AWS::IoT::Certificate::CommonName}`, `...::SerialNumber`, `...::Id`. */
          thingNameTemplate: z.string().min(1).default('${AWS::IoT::Certificate::CommonName}'),
          policyName: z.string().min(1).default('JITPPolicy'),
        })
        .strict()
        .optional(),
      /**
       * The server certificate the endpoint presents (Device Advisor's TLS cases): `valid`, or one a device
       * must refuse: `wrong-san` (issued for another name), `expired`, `untrusted-ca` (chains to a root
       * the device does not trust), `missing-intermediate` (served without its intermediate).
       */
      serverCertificate: z
        .enum(['valid', 'wrong-san', 'expired', 'untrusted-ca', 'missing-intermediate'])
        .default('valid'),
      /**
       * A thing with a device certificate from the lab CA, registered ACTIVE in this region (vars
       * `${name.deviceCert}`, `${name.deviceKey}`): a device that is already provisioned.
       */
      thing: z
        .string()
        .regex(/^[a-zA-Z0-9:_-]{1,128}$/, 'a thing name: 1-128 of a-z A-Z 0-9 : _ -')
        .optional(),
    })
    .strict(),
  async start(ctx, o) {
    const names = [ctx.hostName, ctx.address];
    const server =
      o.serverCertificate === 'valid'
        ? await ctx.pki.issueServer(names)
        : await ctx.pki.bad(SERVER_CERT_CASES[o.serverCertificate], names);
    const jitp = await jitpFiles(ctx);
    const device = o.thing
      ? await ctx.pki.issueClient(o.thing, { file: join(ctx.labDir, `${ctx.name}-${o.thing}`) })
      : undefined;
    const issuer = await ctx.pki.createAuthority(`fieldlab ${o.region} Device CA`);
    const claim = o.claim ? await fleetClaim(ctx) : undefined;
    const handle = await startAwsIot({
      name: ctx.name,
      region: o.region,
      host: ctx.address,
      listeners: o.listeners.map((l) => ({ protocol: l.protocol, port: 0 })),
      tls: { certPem: server.chainPem, keyPem: server.keyPem },
      requireAlpn: o.requireAlpn,
      issuer,
      templates: o.templates,
      certificates: [
        ...(claim ? [{ pem: claim.certPem, claim: true }] : []),
        ...(device && o.thing ? [{ pem: device.certPem, thingName: o.thing }] : []),
      ],
      cas: o.jitp ? [{ pem: jitp.caPem, autoRegistration: true, ...o.jitp }] : [],
    });
    const vars: Record<string, string> = {
      ...jitp.vars,
      ...(claim ? { claimCert: claim.certPath, claimKey: claim.keyPath } : {}),
      ...(device ? { deviceCert: device.chainPath, deviceKey: device.keyPath } : {}),
    };
    return { handle, vars };
  },
});

const ADAPTERS = new Map<string, SimulatorAdapter>([
  [awsIot.type, awsIot],
  [iotHub.type, iotHub],
  [dps.type, dps],
  [krypton.type, krypton],
  [sshd.type, sshd],
  [geoDns.type, geoDns],
  [resolver.type, resolver],
  [tunnelService.type, tunnelService],
  [connectProxy.type, connectProxy],
  [tlsInspector.type, tlsInspector],
  [httpsServer.type, httpsServer],
  [mqttBroker.type, mqttBroker],
]);

export function adapterFor(type: string): SimulatorAdapter | undefined {
  return ADAPTERS.get(type);
}

export function adapterTypes(): string[] {
  return [...ADAPTERS.keys()].sort();
}

export function listAdapters(): Array<{ type: string; summary: string }> {
  return adapterTypes().map((t) => ({ type: t, summary: ADAPTERS.get(t)?.summary ?? '' }));
}

/** Registers an adapter (for simulators added by users or later modules). */
export function registerAdapter(a: SimulatorAdapter): void {
  ADAPTERS.set(a.type, a);
}
