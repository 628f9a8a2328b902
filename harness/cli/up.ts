import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { cleanOwnSync } from '../backends/index.js';
import type { Lab } from '../lab/lab.js';
import { startUpLab, type UpFlags } from '../lab/up-lab.js';

export type { UpFlags };

export async function upCommand(file: string, flags: UpFlags): Promise<void> {
  const running = await startUpLab(file, flags);
  let stopping = false;
  const stop = async (signal: string) => {
    if (stopping) {
      // A second signal while the lab stops: remove it synchronously and exit now.
      process.stderr.write(`fieldlab: ${signal} again: removing lab ${running.id} now\n`);
      cleanOwnSync();
      process.exit(signal === 'SIGINT' ? 130 : 143);
    }
    stopping = true;
    process.stderr.write(`\nfieldlab: ${signal}: stopping lab ${running.id}\n`);
    await running.stop();
    process.exit(0);
  };
  process.on('SIGINT', () => void stop('SIGINT'));
  process.on('SIGTERM', () => void stop('SIGTERM'));
  const endpoints = [...running.simulators.entries()].flatMap(([simName, s]) =>
    s.endpoints.map((e) => ({
      simulator: simName,
      type: s.decl.type,
      endpoint: e.name,
      host: s.decl.host,
      address: e.host,
      port: e.port,
      url: e.url ?? '',
    })),
  );
  const values = clientValues(running);
  const info = {
    labId: running.id,
    dir: running.dir,
    hosts: Object.fromEntries(running.hosts),
    hostsFile: running.hostsFile,
    caBundle: running.pki.trust.bundlePath,
    env: running.trustEnv(),
    endpoints,
    values: Object.fromEntries(values.map((v) => [v.ref, v.value])),
  };
  writeFileSync(join(running.dir, 'endpoints.json'), `${JSON.stringify(info, null, 2)}\n`);
  if (flags.json) {
    process.stdout.write(`${JSON.stringify(info)}\n`);
  } else {
    const out = [`lab ${running.id} is up (Ctrl-C stops it and removes everything)`, '', 'endpoints:'];
    for (const e of endpoints)
      out.push(
        `  ${`${e.simulator}.${e.endpoint}`.padEnd(24)} ${`${e.address}:${e.port}`.padEnd(22)} ${e.url}`,
      );
    if (values.length > 0) {
      // What a scenario's client gets as `${hub.connectionString}` and the like: for your own device.
      out.push('', 'values for clients (what scenarios reference as ${simulator.value}):');
      const width = Math.min(40, Math.max(...values.map((v) => v.ref.length + 4)));
      for (const v of values) out.push(`  ${`\${${v.ref}}`.padEnd(width)} ${v.value}`);
    }
    out.push('', 'hosts:');
    for (const [h, a] of running.hosts) out.push(`  ${a.padEnd(16)} ${h}`);
    out.push('', 'environment for clients:');
    for (const [k, v] of Object.entries(running.trustEnv())) out.push(`  export ${k}=${v}`);
    const first = endpoints.find((e) => e.url.startsWith('https'));
    if (first)
      out.push(
        '',
        `try: curl --cacert ${info.caBundle} --connect-to ${first.host}:${first.port}:${first.address}:${first.port} ${first.url}`,
      );
    process.stdout.write(`${out.join('\n')}\n`);
  }
  // Stay up until a signal: the listening sockets keep the event loop alive.
}

/**
 * Each simulator's client values, as a scenario's client gets them (`${hub.connectionString}`,
 * `${dps.idScope}`, `${proxy.rootCa}`...): what a person needs to point their own device at the lab.
 */
export function clientValues(lab: Lab): Array<{ ref: string; value: string }> {
  const out: Array<{ ref: string; value: string }> = [];
  for (const [name, s] of lab.simulators) {
    for (const key of Object.keys(s.vars).sort()) {
      const ref = `${name}.${key}`;
      out.push({ ref, value: lab.interpolate(`\${${ref}}`, 'client') });
    }
  }
  return out;
}
