import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname } from 'node:path';
import { Document } from 'yaml';
import { FieldlabError } from '../../simulators/common/errors.js';
import type { ScenarioInput } from '../scenario/model.js';

/**
 * `fieldlab init`: a starter scenario for one's own device program. The lab is the cloud's persona; the
 * program gets the connection values as environment variables (the same names our example programs in
 * examples/ read), and the variants are the usual field failures, each with the class it must fail with.
 *
 * The shapes are the catalogue's: a refused port as in mqtt-port-blocked.yaml, an authenticating proxy
 * as in proxy-auth.yaml, a re-signing proxy as in tls-inspection-untrusted-root.yaml.
 */

export const CLOUDS = ['azure', 'aws', 'mqtt', 'https'] as const;
export type Cloud = (typeof CLOUDS)[number];

export interface InitFlags {
  client: string;
  cloud: Cloud;
  proxy?: boolean;
  out?: string;
  name?: string;
  force?: boolean;
}

type Env = Record<string, string>;
type Sim = ScenarioInput['lab']['simulators'][number];
type VariantIn = ScenarioInput['variants'][number];
type Saw = { source: string; type: string; match?: Record<string, unknown> };

/** What a cloud persona needs from the scenario and what its device program reads. */
interface CloudProfile {
  title: string;
  /** The cloud's simulator and its lab host. */
  cloud: Sim;
  /** The environment of a device that connects directly (the cloud's connection values). */
  env: Env;
  /** The variable naming the root the device trusts. */
  caVar: string;
  /** How a device is switched to go through an HTTP proxy on 443 (besides `https_proxy`). */
  viaProxy?: Env;
  /** `host:443` → the cloud endpoint a proxy really connects to. */
  proxyMap?: Record<string, string>;
  /** The endpoint a direct device connects to (the port a firewall blocks). */
  port: { target: string; number: number };
  /** What the cloud records when the device got through. */
  arrived: Saw;
  /** Extra failures this cloud has (beyond blocked port, proxy, inspection). */
  extra?: VariantIn[];
  /** Why proxy and inspection variants are left out, when they are. */
  noProxy?: string;
  /** The variables, explained in the file's header. */
  explainEnv: string[];
}

const PROXY_USER = 'device';
/**
 * The lab's authoritative DNS for the cloud's names (every cloud host is under this zone): the lab resolver
 * on port 53 that the device's resolv.conf names forwards the zone to it, so a DNS fault on it reaches the
 * device's own getaddrinfo (`broken-dns-servfail`).
 */
const DNS_ZONE = 'iot.example.com';
/** The lab device's symmetric key (a lab key), so a connection string can be written for another host. */
const HUB_DEVICE_KEY = Buffer.from('fieldlab starter device key 0001').toString('base64');
const PROXY_PASSWORD = 's3cret';

const PROFILES: Record<Cloud, CloudProfile> = {
  azure: {
    title: 'my device and Azure IoT Hub',
    cloud: {
      name: 'hub',
      type: 'iot-hub',
      host: 'hub.iot.example.com',
      ports: { amqps: 5671, mqtts: 8883 },
      options: { devices: [{ deviceId: 'device-1', primaryKey: HUB_DEVICE_KEY }] },
    },
    env: {
      UpstreamProtocol: 'Mqtt',
      IOTHUB_DEVICE_CONNECTION_STRING: '${hub.connectionString}',
      IOTHUB_CA: '${lab.ca}',
      IOTHUB_TIMEOUT_MS: '10000',
    },
    caVar: 'IOTHUB_CA',
    viaProxy: { UpstreamProtocol: 'MqttWs' },
    proxyMap: { 'hub.iot.example.com:443': '${hub.https.address}:${hub.https.port}' },
    port: { target: 'hub.mqtts', number: 8883 },
    arrived: { source: 'hub', type: 'telemetry', match: { deviceId: 'device-1' } },
    explainEnv: [
      'IOTHUB_DEVICE_CONNECTION_STRING  HostName=hub.iot.example.com;DeviceId=device-1;SharedAccessKey=...',
      'IOTHUB_CA                        the root the device trusts (PEM file)',
      'UpstreamProtocol                 Mqtt (8883) | MqttWs (443, through https_proxy) | Amqp | AmqpWs',
      'https_proxy                      http://[user:pass@]proxy:port, in the proxy variants',
    ],
  },
  aws: {
    title: 'my device and AWS IoT Core',
    cloud: {
      name: 'iot',
      type: 'aws-iot',
      host: 'iot.example.com',
      ports: { mqtts: 8883 },
      options: { claim: false, thing: 'sensor-1' },
    },
    env: {
      IOT_ENDPOINT: 'iot.example.com',
      IOT_PORT: '8883',
      IOT_CA: '${lab.ca}',
      DEVICE_CERT: '${iot.deviceCert}',
      DEVICE_KEY: '${iot.deviceKey}',
      CLIENT_ID: 'sensor-1',
      CONNECT_TIMEOUT_MS: '5000',
      CRT_LOG: 'warn',
    },
    caVar: 'IOT_CA',
    port: { target: 'iot.mqtts', number: 8883 },
    arrived: { source: 'iot', type: 'publish', match: { clientId: 'sensor-1' } },
    extra: [
      {
        name: 'broken-untrusted-root',
        description: 'the endpoint presents a certificate from a root the device does not trust',
        simulators: { iot: { serverCertificate: 'untrusted-ca' } },
        expect: {
          result: 'fail',
          class: 'tls.untrusted-root',
          labNeverSaw: [{ source: 'iot', type: 'publish' }],
        },
      },
    ],
    noProxy:
      "AWS IoT Core authenticates the device by its client certificate (mutual TLS), which a re-signing proxy cannot pass on, and the example device (examples/aws-iot-publish.ts) has no proxy setting: the proxy and inspection variants are left out. Add them from proxy-auth.yaml if your device goes through a CONNECT proxy (AWS IoT's 443 needs ALPN x-amzn-mqtt-ca).",
    explainEnv: [
      'IOT_ENDPOINT, IOT_PORT   the AWS IoT endpoint (8883, or 443 with ALPN x-amzn-mqtt-ca)',
      'IOT_CA                   the root the device trusts (PEM file)',
      'DEVICE_CERT, DEVICE_KEY  the thing certificate (registered in the lab) and its key (PEM files)',
      'CLIENT_ID                the MQTT client id (the thing name)',
    ],
  },
  mqtt: {
    title: 'my device and its MQTT broker',
    cloud: {
      name: 'broker',
      type: 'mqtt-broker',
      host: 'mqtt.iot.example.com',
      ports: { mqtts: 8883 },
      options: { listeners: [{ protocol: 'mqtts' }, { protocol: 'wss', path: '/mqtt' }] },
    },
    env: {
      UPSTREAM_PROTOCOL: 'Mqtt',
      MQTT_HOST: 'mqtt.iot.example.com',
      MQTT_CA: '${lab.ca}',
    },
    caVar: 'MQTT_CA',
    viaProxy: { UPSTREAM_PROTOCOL: 'MqttWs' },
    proxyMap: { 'mqtt.iot.example.com:443': '${broker.wss.address}:${broker.wss.port}' },
    port: { target: 'broker.mqtts', number: 8883 },
    arrived: { source: 'broker', type: 'publish' },
    explainEnv: [
      'MQTT_HOST          the broker (mqtts on 8883, MQTT over WebSocket at wss://MQTT_HOST:443/mqtt)',
      'MQTT_CA            the root the device trusts (PEM file)',
      'UPSTREAM_PROTOCOL  Mqtt (8883) | MqttWs (443, through https_proxy)',
      'https_proxy        http://[user:pass@]proxy:port, in the proxy variants',
    ],
  },
  https: {
    title: 'my device and its HTTPS endpoint',
    cloud: { name: 'api', type: 'https-server', host: 'api.iot.example.com', port: 8443 },
    env: { API_URL: 'https://api.iot.example.com:8443/', API_CA: '${lab.ca}' },
    caVar: 'API_CA',
    // Through a proxy the device asks for the usual 443, which the proxy maps to the lab endpoint.
    viaProxy: { API_URL: 'https://api.iot.example.com/' },
    proxyMap: { 'api.iot.example.com:443': '${api.address}:${api.port}' },
    port: { target: 'api', number: 8443 },
    arrived: { source: 'api', type: 'request' },
    explainEnv: [
      'API_URL      the endpoint (https://api.iot.example.com:8443/ direct; :443 through a proxy)',
      'API_CA       the root the device trusts (PEM file)',
      'https_proxy  http://[user:pass@]proxy:port, in the proxy variants',
    ],
  },
};

/** Splits a command line as a POSIX shell would for plain words and '…' / "…" quoting (no expansion). */
export function splitCommand(line: string): string[] {
  const words: string[] = [];
  let word: string | undefined;
  let quote: '"' | "'" | undefined;
  for (let i = 0; i < line.length; i++) {
    const c = line[i]!;
    if (quote) {
      if (c === quote) quote = undefined;
      else if (c === '\\' && quote === '"' && i + 1 < line.length) word = (word ?? '') + line[++i];
      else word = (word ?? '') + c;
    } else if (c === '"' || c === "'") {
      quote = c;
      word ??= '';
    } else if (c === '\\' && i + 1 < line.length) word = (word ?? '') + line[++i];
    else if (/\s/.test(c)) {
      if (word !== undefined) words.push(word);
      word = undefined;
    } else word = (word ?? '') + c;
  }
  if (quote) {
    throw new FieldlabError('E_BAD_FLAG', `--client: unclosed ${quote} in ${line}`, {
      hint: `close the quote, e.g. --client "python3 'my device.py'"`,
    });
  }
  if (word !== undefined) words.push(word);
  return words;
}

/** A scenario name from the program's file name: `python3 my_device.py` → `my-device`. */
function nameFrom(argv: string[]): string {
  const program = argv.find((a, i) => i > 0 && /\.[a-z]+$/i.test(a)) ?? argv[0] ?? 'my-device';
  const slug = basename(program, extname(program))
    .toLowerCase()
    .replace(/[^a-z0-9]+/g, '-')
    .replace(/^-+|-+$/g, '');
  return /^[a-z0-9]/.test(slug) ? slug : 'my-device';
}

/** The starter scenario for a device program and a cloud (as data; `initYaml` writes it). */
export function initScenario(flags: Pick<InitFlags, 'client' | 'cloud' | 'proxy' | 'name'>): ScenarioInput {
  const argv = splitCommand(flags.client);
  if (argv.length === 0) {
    throw new FieldlabError('E_BAD_FLAG', '--client is empty', {
      hint: 'give the command that runs your device program, e.g. --client "python3 my_device.py"',
    });
  }
  const p = PROFILES[flags.cloud];
  if (flags.proxy && !p.viaProxy) {
    throw new FieldlabError('E_BAD_FLAG', `--proxy is not available with --cloud ${flags.cloud}`, {
      hint: p.noProxy ?? 'leave out --proxy',
    });
  }
  const proxyUrl = (creds: boolean, via = 'proxy') =>
    `http://${creds ? `${PROXY_USER}:${PROXY_PASSWORD}@` : ''}\${${via}.hostport}`;
  const simulators: Sim[] = [
    p.cloud,
    {
      name: 'dns',
      type: 'geo-dns',
      host: 'ns1.example.net',
      options: {
        zones: [{ origin: DNS_ZONE, soa: { mname: 'ns1.example.net', rname: 'hostmaster.example.net' } }],
      },
    },
  ];
  if (p.viaProxy) {
    simulators.push(
      {
        name: 'proxy',
        type: 'connect-proxy',
        host: 'proxy.corp.example.com',
        port: 3128,
        options: { users: [{ username: PROXY_USER, password: PROXY_PASSWORD }], map: p.proxyMap ?? {} },
      },
      {
        name: 'inspector',
        type: 'tls-inspector',
        host: 'inspector.corp.example.com',
        port: 8080,
        options: { map: p.proxyMap ?? {} },
      },
    );
  }
  // The device's own settings: direct, or (--proxy) through the authenticating proxy on 443.
  const env: Env = flags.proxy ? { ...p.env, ...p.viaProxy, https_proxy: proxyUrl(true) } : { ...p.env };
  const arrived = { result: 'pass' as const, labSaw: [p.arrived] };
  const variants: VariantIn[] = [
    {
      name: 'fixed',
      description: flags.proxy
        ? 'the device as configured: through the proxy, with its credentials'
        : 'the device as configured, on a clean network',
      expect: arrived,
    },
  ];
  if (flags.proxy) {
    variants.push({
      name: 'broken-port-blocked',
      description: `the proxy does not let CONNECT through to 443 (it allows ${p.port.number} only)`,
      simulators: { proxy: { allowPorts: [p.port.number] } },
      expect: {
        result: 'fail',
        class: 'proxy.connect-denied',
        labSaw: [{ source: 'proxy', type: 'connect-denied' }],
      },
    });
  } else {
    variants.push({
      name: 'broken-port-blocked',
      description: `a firewall rejects port ${p.port.number} on the way out`,
      faults: [{ target: p.port.target, type: 'refuse' }],
      expect: { result: 'fail', class: 'tcp.refused' },
    });
  }
  if (p.viaProxy) {
    const via = { ...p.viaProxy };
    variants.push({
      name: 'broken-proxy-auth',
      description: 'the proxy wants a user and password; the device gives none',
      client: { env: { ...via, https_proxy: proxyUrl(false) } },
      expect: {
        result: 'fail',
        class: 'proxy.auth-required',
        labSaw: [{ source: 'proxy', type: 'auth-required', match: { reason: 'missing' } }],
      },
    });
    if (!flags.proxy) {
      variants.push({
        name: 'fixed-proxy-auth',
        description: 'the credentials in the proxy URL (percent-encode @ : / in them)',
        client: { env: { ...via, https_proxy: proxyUrl(true) } },
        expect: { ...arrived, labSaw: [{ source: 'proxy', type: 'connect-allowed' }, p.arrived] },
      });
    }
    variants.push(
      {
        name: 'broken-inspection-untrusted',
        description:
          "a TLS-inspecting proxy re-signs the cloud's certificate with a root the device does not trust",
        client: { env: { ...via, https_proxy: proxyUrl(false, 'inspector') } },
        expect: {
          result: 'fail',
          class: 'tls.untrusted-root',
          labSaw: [{ source: 'inspector', type: 'tls-client-error' }],
        },
      },
      {
        name: 'fixed-inspection-trusted',
        description: "the inspecting proxy's root added to the device's trust bundle",
        client: {
          env: { ...via, https_proxy: proxyUrl(false, 'inspector'), [p.caVar]: '${inspector.bundle}' },
        },
        expect: { ...arrived, labSaw: [{ source: 'inspector', type: 'intercepted' }, p.arrived] },
      },
    );
  }
  // Behind a proxy the proxy resolves the endpoint, not the device: its DNS failure is the proxy's 502.
  if (!flags.proxy) {
    variants.push({
      name: 'broken-dns-servfail',
      description: `the DNS answers SERVFAIL for ${p.cloud.host} (a broken forwarder or DNSSEC failure; getaddrinfo says EAI_AGAIN): the lab's authoritative server fails the name and the device's resolver passes it on (needs the lab DNS on port 53: capability dns53)`,
      faults: [{ target: 'dns', type: 'servfail', qname: p.cloud.host }],
      expect: { result: 'fail', class: 'dns.servfail' },
    });
  }
  variants.push(...(p.extra ?? []));

  return {
    name: flags.name ?? nameFrom(argv),
    title: `${p.title}${flags.proxy ? ', behind an authenticating proxy' : ''}: the usual field failures`,
    description: `Written by fieldlab init for \`${flags.client}\` (--cloud ${flags.cloud}${flags.proxy ? ' --proxy' : ''}).`,
    tags: ['starter', flags.cloud],
    backends: ['loopback'],
    timeout: '45s',
    lab: { simulators },
    client: { type: 'command', argv, env },
    variants,
  };
}

/** The header comment: what the program is given and how to adapt the file. */
function header(flags: InitFlags, p: CloudProfile): string {
  const lines = [
    ` fieldlab starter scenario for your device program, against the ${flags.cloud} persona.`,
    '',
    ' Run it:   npx fieldlab run <this file>          (one variant: --only <name>/fixed)',
    ' Explore:  npx fieldlab up <this file> --variant fixed   (prints endpoints, env, the lab CA)',
    '',
    ' Your program runs as `client.argv` with these variables set (the lab fills in ${...}):',
    ...p.explainEnv.map((l) => `   ${l}`),
    ' Lab host names resolve to the lab inside the program: its private resolv.conf names the lab DNS.',
    ' Other trust variables (NODE_EXTRA_CA_CERTS, SSL_CERT_FILE, REQUESTS_CA_BUNDLE) can point at the lab',
    ' CA the same way: ${lab.ca}.',
    '',
    ' To adapt it:',
    '   - rename the variables under client.env to the ones your program reads (or read these);',
    '     a variant changes only the variables it lists under client.env.',
    '   - each variant expects a result: `pass`, or `fail` with the failure class your program must end',
    '     with (exit non-zero and print the error: ECONNREFUSED, unable to get local issuer certificate,',
    '     407 Proxy Authentication Required...). `fieldlab list --simulators` and the README list options.',
    '   - delete the variants that do not apply; copy more from the catalogue (scenarios/ in the package).',
  ];
  if (p.noProxy) lines.push('', ...wrap(` ${p.noProxy}`));
  lines.push(
    '',
    " DNS: the program's resolv.conf names the lab's resolver on port 53, which answers lab names and",
    ` forwards ${DNS_ZONE} to the lab's authoritative server (dns), where DNS faults go: broken-dns-servfail`,
    ' (without --proxy: behind one, the proxy resolves) makes it answer SERVFAIL for the endpoint. Other',
    ' faults: servfail, nxdomain, refused, drop, delay, truncate, tcp-refused, stale, wrong-answer (README).',
    ' Where port 53 cannot be bound (not root, no CAP_NET_BIND_SERVICE) names come from a hosts file and',
    ' that variant is skipped (capability dns53).',
  );
  return lines.join('\n');
}

function wrap(text: string, width = 100): string[] {
  const out: string[] = [];
  let line = '';
  for (const word of text.trim().split(/\s+/)) {
    if (line && line.length + word.length + 1 > width) {
      out.push(` ${line}`);
      line = word;
    } else line = line ? `${line} ${word}` : word;
  }
  if (line) out.push(` ${line}`);
  return out;
}

/** The starter scenario as YAML text, with its how-to-adapt header. */
export function initYaml(flags: InitFlags): string {
  const doc = new Document(initScenario(flags), { aliasDuplicateObjects: false });
  doc.commentBefore = header(flags, PROFILES[flags.cloud]);
  return doc.toString({ lineWidth: 0 });
}

export async function initCommand(flags: InitFlags): Promise<void> {
  const text = initYaml(flags);
  const out = flags.out ?? `${initScenario(flags).name}.yaml`;
  if (out === '-') {
    process.stdout.write(text);
    return;
  }
  if (existsSync(out) && !flags.force) {
    throw new FieldlabError('E_EXISTS', `${out} already exists`, {
      hint: 'give another --out, or --force to overwrite it',
    });
  }
  mkdirSync(dirname(out), { recursive: true });
  writeFileSync(out, text);
  process.stdout.write(`wrote ${out}: run it with \`fieldlab run ${out}\`\n`);
}
