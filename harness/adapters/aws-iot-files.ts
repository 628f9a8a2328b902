import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { AdapterContext } from './adapter.js';

/**
 * The lab's JITP files, made once per lab: a device CA (registered in the regions whose aws-iot simulator
 * has `jitp`), a device certificate it signed, presented with the CA certificate as AWS's JITR guide says
 * (`jitpCert`; `jitpCertOnly` without it), and a device certificate from a CA registered nowhere (`rogueCert`).
 */
export async function jitpFiles(
  ctx: AdapterContext,
): Promise<{ caPem: string; vars: Record<string, string> }> {
  // Shared by every region of the lab, in a worker too: each region registers the same device CA.
  const p = (f: string) => join(ctx.sharedDir ?? ctx.labDir, f);
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

/**
 * The lab's fleet-provisioning claim certificate: one per lab, registered in every AWS IoT region of
 * the lab (as a fleet's claim is registered in every region it may provision in).
 */
export async function fleetClaim(
  ctx: AdapterContext,
): Promise<{ certPath: string; keyPath: string; certPem: string }> {
  const dir = ctx.sharedDir ?? ctx.labDir;
  const certPath = join(dir, 'fleet-claim.pem');
  const keyPath = join(dir, 'fleet-claim-key.pem');
  if (!existsSync(certPath)) await ctx.pki.issueClient('fleet-claim', { file: join(dir, 'fleet-claim') });
  return { certPath, keyPath, certPem: readFileSync(certPath, 'utf8') };
}
