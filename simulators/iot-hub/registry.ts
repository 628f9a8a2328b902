import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A device registry shared between a DPS and a hub in different processes (containers on one volume):
 * the DPS writes `<dir>/<deviceId>.key` when it assigns a device; the hub reads it for a device it does
 * not know yet.
 */

/** Device ids that can name a registry file (no path separators, no dot-dot). */
const SAFE_DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/** A device's file in a registry directory; undefined for an id that cannot safely name a file. */
function keyFile(dir: string, deviceId: string): string | undefined {
  return SAFE_DEVICE_ID.test(deviceId) && !deviceId.includes('..') ? join(dir, `${deviceId}.key`) : undefined;
}

/** The key a DPS in another process registered for a device (see `registryDir`), if any. */
export function registeredKey(dir: string | undefined, deviceId: string): string | undefined {
  const file = dir === undefined ? undefined : keyFile(dir, deviceId);
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Records a device's key in a registry directory for a hub in another process. */
export function registerKey(dir: string, deviceId: string, key: string): void {
  const file = keyFile(dir, deviceId);
  if (!file) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `${key}\n`, { mode: 0o600 });
}
