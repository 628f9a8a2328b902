import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A device registry shared between a DPS and a hub in different processes (containers on one volume):
 * the DPS writes `<dir>/<deviceId>.key` when it assigns a device; the hub reads it for a device it does
 * not know yet.
 */

/** Device ids that can name a registry file (no path separators, no dot-dot). */
const SAFE_DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** The key a DPS in another process registered for a device (see `registryDir`), if any. */
export function registeredKey(dir: string | undefined, deviceId: string): string | undefined {
  if (!dir || !SAFE_DEVICE_ID.test(deviceId) || deviceId.includes('..')) return undefined;
  try {
    return readFileSync(join(dir, `${deviceId}.key`), 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Records a device's key in a registry directory for a hub in another process. */
export function registerKey(dir: string, deviceId: string, key: string): void {
  if (!SAFE_DEVICE_ID.test(deviceId) || deviceId.includes('..')) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(join(dir, `${deviceId}.key`), `${key}\n`, { mode: 0o600 });
}
