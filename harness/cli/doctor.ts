import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { basename, dirname, extname, join } from 'node:path';
import { FieldlabError } from '../../simulators/common/errors.js';
import { parseTarget } from '../../simulators/common/targets.js';
import { emitDnsScenarioYaml, emitScenarioYaml } from '../doctor/emit.js';
import { type DoctorPort, type DoctorReport, type DoctorTarget, runDoctor } from '../doctor/index.js';

export interface DoctorFlags {
  azure: string[];
  dps: string[];
  aws: string[];
  tunnel: string[];
  endpoint: string[];
  proxy?: string;
  /** The first is the one whose answers are used; the others are compared with it. */
  dnsServer: string[];
  ca?: string;
  timeout: number;
  json?: boolean;
  emitScenario?: string;
  force?: boolean;
}

/** A TLS port; HTTPS ones (443) also give the server's clock. */
const tlsPort = (port: number): DoctorPort => ({ port, tls: true, https: port === 443 });
const ports = (...list: number[]) => list.map(tlsPort);

/** The endpoints the flags name, with the ports their transports use. */
export function doctorTargets(f: DoctorFlags): DoctorTarget[] {
  const targets: DoctorTarget[] = [
    // AMQP 5671, MQTT 8883, HTTPS and the WebSocket transports 443.
    ...f.azure.map((host) => ({ host, ports: ports(443, 5671, 8883), role: 'Azure IoT Hub' })),
    ...f.dps.map((host) => ({ host, ports: ports(443, 5671, 8883), role: 'Azure DPS' })),
    // MQTT 8883, or 443 (ALPN x-amzn-mqtt-ca) and HTTPS.
    ...f.aws.map((host) => ({ host, ports: ports(8883, 443), role: 'AWS IoT Core' })),
    // Secure tunneling: the management API and the data plane (WebSocket on 443).
    ...f.tunnel.flatMap((region) => [
      {
        host: `api.tunneling.iot.${region}.amazonaws.com`,
        ports: ports(443),
        role: 'AWS secure tunneling API',
      },
      {
        host: `data.tunneling.iot.${region}.amazonaws.com`,
        ports: ports(443),
        role: 'AWS secure tunneling data',
      },
    ]),
  ];
  for (const e of f.endpoint) {
    const t = parseTarget(e);
    if (!t) {
      throw new FieldlabError('E_BAD_FLAG', `--endpoint ${e}: expected host:port`, {
        hint: 'e.g. --endpoint hub.example.net:5671',
      });
    }
    // Any port: TLS is assumed (IoT endpoints speak it), and asked for HTTP's Date when it answers.
    const port = { port: t.port, tls: true, https: true };
    const same = targets.find((x) => x.host === t.host && x.role === 'endpoint');
    if (same) same.ports.push(port);
    else targets.push({ host: t.host, ports: [port], role: 'endpoint' });
  }
  if (targets.length === 0) {
    throw new FieldlabError('E_BAD_FLAG', 'doctor needs at least one endpoint to check', {
      hint: 'give --azure HUB_HOSTNAME, --dps ENDPOINT, --aws ENDPOINT, --tunnel REGION or --endpoint host:port',
    });
  }
  return targets;
}

function proxyUrl(flag: string | undefined): URL | undefined {
  const raw = flag ?? process.env.https_proxy ?? process.env.HTTPS_PROXY;
  if (!raw) return undefined;
  try {
    const u = new URL(raw);
    if (u.protocol === 'http:' || u.protocol === 'https:') return u;
  } catch {}
  throw new FieldlabError('E_BAD_FLAG', `${flag ? '--proxy' : 'https_proxy'}: ${raw} is not a proxy URL`, {
    hint: 'give http://[user:pass@]host:port (credentials percent-encoded)',
  });
}

function caFile(file: string | undefined): string[] | undefined {
  if (!file) return undefined;
  try {
    return [readFileSync(file, 'utf8')];
  } catch {
    throw new FieldlabError('E_NO_SUCH_PATH', `--ca: cannot read ${file}`, {
      hint: "give the PEM file of the roots the device trusts (the OS bundle, or the runtime's)",
    });
  }
}

/** Where the DNS failures go beside `--emit-scenario site.yaml`: site-dns.yaml. */
export function dnsScenarioPath(out: string): string {
  const ext = extname(out) || '.yaml';
  return join(dirname(out), `${basename(out, extname(out))}-dns${ext}`);
}

export function formatDoctor(report: DoctorReport, targets: DoctorTarget[]): string {
  const lines: string[] = [];
  const setup = [
    report.proxy ? `proxy ${report.proxy}` : 'no proxy',
    `DNS ${report.dnsServer ?? 'system resolver'}`,
  ];
  lines.push(`fieldlab doctor: ${targets.length} endpoint(s), ${setup.join(', ')}`);
  for (const t of targets) {
    lines.push('', `${t.host} (${t.role})`);
    for (const c of report.checks.filter((x) => x.host === t.host)) {
      lines.push(`  ${c.ok ? '✓' : '✗'} ${c.summary}  ${c.ms} ms`);
      if (c.hint) lines.push(`      fix: ${c.hint}`);
    }
  }
  const failed = report.checks.filter((c) => !c.ok).length;
  lines.push('', failed === 0 ? 'all checks passed' : `${failed} of ${report.checks.length} checks failed`);
  return `${lines.join('\n')}\n`;
}

export async function doctorCommand(flags: DoctorFlags): Promise<void> {
  const targets = doctorTargets(flags);
  const proxy = proxyUrl(flags.proxy);
  const ca = caFile(flags.ca);
  const out = flags.emitScenario;
  const dnsOut = out ? dnsScenarioPath(out) : undefined;
  for (const file of [out, dnsOut]) {
    if (file && existsSync(file) && !flags.force) {
      throw new FieldlabError('E_EXISTS', `--emit-scenario: ${file} already exists`, {
        hint: 'give another file, or --force to overwrite it',
      });
    }
  }
  const options = {
    targets,
    ...(proxy ? { proxy } : {}),
    ...(flags.dnsServer[0] ? { dnsServer: flags.dnsServer[0] } : {}),
    ...(flags.dnsServer.length > 1 ? { otherDnsServers: flags.dnsServer.slice(1) } : {}),
    ...(ca ? { ca } : {}),
    timeoutMs: flags.timeout,
  };
  const report = await runDoctor(options);
  process.stdout.write(flags.json ? `${JSON.stringify(report, null, 2)}\n` : formatDoctor(report, targets));
  if (out && dnsOut) {
    const slug = basename(out, extname(out))
      .toLowerCase()
      .replace(/[^a-z0-9]+/g, '-')
      .replace(/^-+|-+$/g, '');
    const name = /^[a-z0-9]/.test(slug) ? slug : 'site';
    writeFileSync(out, emitScenarioYaml(report, options, name));
    process.stderr.write(`wrote ${out}: run it with \`fieldlab run ${out}\`\n`);
    // DNS failures reproduce with a client that asks the lab DNS itself: a scenario of their own.
    const dns = emitDnsScenarioYaml(report, `${name}-dns`);
    if (dns) {
      writeFileSync(dnsOut, dns);
      process.stderr.write(`wrote ${dnsOut} (the DNS failures): run it with \`fieldlab run ${dnsOut}\`\n`);
    }
  }
  if (!report.ok) process.exitCode = 1;
}
