import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { expect } from 'vitest';
import { emitDnsScenarioYaml, emitScenarioYaml } from '../../harness/doctor/emit.js';
import type { DoctorCheck, DoctorOptions, DoctorReport } from '../../harness/doctor/index.js';
import type { VariantResult } from '../../harness/runner/result.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenarios } from '../../harness/scenario/load.js';
import { start as startGeoDns } from '../../simulators/geo-dns/index.js';
import { start as startHttps } from '../../simulators/https-server/index.js';
import type { PkiHandle } from '../../simulators/pki/index.js';

/** The check of a kind for host (and port); fails the test, with the report, when there is none. */
export function find(report: DoctorReport, check: string, host: string, port?: number): DoctorCheck {
  const c = report.checks.find(
    (x) => x.check === check && x.host === host && (port === undefined || x.port === port),
  );
  if (!c) throw new Error(`no ${check} check for ${host}:${port}: ${JSON.stringify(report.checks, null, 1)}`);
  return c;
}

/** An HTTPS endpoint with a lab certificate for `names`, on loopback (or on a bound handle's front). */
export async function httpsEndpoint(pki: PkiHandle, name: string, names: string[]) {
  const cert = await pki.issueServer(names);
  return startHttps({ name, certPem: cert.chainPem, keyPem: cert.keyPem });
}

/** A name server on loopback answering `records` (name → IPv4), one zone per name. */
export function nameServer(
  records: Record<string, string>,
  faults: Record<string, 'servfail' | 'nxdomain' | 'drop'> = {},
) {
  return startGeoDns({
    name: 'site-dns',
    zones: Object.entries(records).map(([origin, address]) => ({
      origin,
      soa: { mname: 'ns1.site.example', rname: 'hostmaster.site.example', minimum: 60 },
      records: [{ name: '@', type: 'A' as const, value: address }],
    })),
    faults,
  });
}

/**
 * Writes what doctor found as scenario files (the site and, when names failed, its DNS scenario), runs
 * every variant of them in a loopback lab, and returns variant → the class it failed with (or `pass`).
 * Every variant must meet its own expectation.
 */
export async function reproduce(
  dir: string,
  report: DoctorReport,
  o: DoctorOptions,
  name: string,
): Promise<Record<string, string>> {
  const files = [join(dir, `${name}.yaml`)];
  writeFileSync(files[0]!, emitScenarioYaml(report, o, name));
  const dns = emitDnsScenarioYaml(report, `${name}-dns`);
  if (dns) {
    files.push(join(dir, `${name}-dns.yaml`));
    writeFileSync(files[1]!, dns);
  }
  return runScenarioFiles(files, name);
}

/**
 * Runs every variant of these scenario files in a loopback lab; each must meet its own expectation.
 * Returns variant → the class it failed with (or `pass`); a `<name>-dns` scenario's as `dns:<variant>`.
 */
export async function runScenarioFiles(files: string[], name: string): Promise<Record<string, string>> {
  const { loaded, errors } = await loadScenarios(files);
  expect(errors.map((e) => e.message)).toEqual([]);
  const seen: Record<string, string> = {};
  for (const l of loaded) {
    for (const v of l.scenario.variants) {
      const r: VariantResult = await runVariant(l, v, { backend: 'loopback' });
      expect(r.status, `${l.scenario.name}/${v.name}: ${r.explanation.join('\n')} ${r.error ?? ''}`).toBe(
        'passed',
      );
      const key = l.scenario.name === name ? v.name : `dns:${v.name}`;
      seen[key] = r.observed?.class ?? r.observed?.result ?? '?';
    }
  }
  return seen;
}
