import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';

/**
 * A device registry shared between a DPS and a hub in different processes (containers on one volume):
 * the DPS writes `<dir>/<deviceId>.key` (symmetric key) or `<dir>/<deviceId>.x509` (the device
 * certificate's thumbprint) when it assigns a device; the hub reads it for a device it does not know yet.
 */

/** Device ids that can name a registry file (no path separators, no dot-dot). */
const SAFE_DEVICE_ID = /^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/;

/**
 * A device's file in a registry directory (`.key`: its symmetric key; `.x509`: its certificate thumbprint);
 * undefined for an id that cannot safely name a file.
 */
function keyFile(dir: string, deviceId: string, ext: 'key' | 'x509' = 'key'): string | undefined {
  return SAFE_DEVICE_ID.test(deviceId) && !deviceId.includes('..')
    ? join(dir, `${deviceId}.${ext}`)
    : undefined;
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

/** The certificate thumbprint a DPS in another process registered for an X.509 device, if any. */
export function registeredThumbprint(dir: string | undefined, deviceId: string): string | undefined {
  const file = dir === undefined ? undefined : keyFile(dir, deviceId, 'x509');
  if (!file) return undefined;
  try {
    return readFileSync(file, 'utf8').trim() || undefined;
  } catch {
    return undefined;
  }
}

/** Records an X.509 device's certificate thumbprint in a registry directory for a hub in another process. */
export function registerThumbprint(dir: string, deviceId: string, thumbprint: string): void {
  const file = keyFile(dir, deviceId, 'x509');
  if (!file) return;
  mkdirSync(dir, { recursive: true });
  writeFileSync(file, `${thumbprint}\n`, { mode: 0o600 });
}
