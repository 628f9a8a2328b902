/**
 * Debian's mosquitto as the MQTT benchmarks' reference broker: one process on a config written to a temp
 * dir, started and waited for the same way by bench/mqtt.ts and bench/mqtt-connect.ts.
 */
import { type ChildProcess, spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { createServer, connect as netConnect } from 'node:net';
import { join } from 'node:path';

export const MOSQUITTO = '/usr/sbin/mosquitto';
const HOST = '127.0.0.1';

/** A free TCP port on 127.0.0.1 (closed again: mosquitto binds it next). */
export async function freePort(): Promise<number> {
  const s = createServer();
  await new Promise<void>((r) => s.listen(0, HOST, () => r()));
  const { port } = s.address() as { port: number };
  await new Promise<void>((r) => s.close(() => r()));
  return port;
}

/** Resolves once something accepts TCP connections on port (bounded). */
async function waitForPort(port: number, ms = 5000): Promise<void> {
  const deadline = Date.now() + ms;
  while (Date.now() < deadline) {
    const ok = await new Promise<boolean>((resolve) => {
      const s = netConnect(port, HOST);
      s.once('connect', () => {
        s.destroy();
        resolve(true);
      });
      s.once('error', () => resolve(false));
    });
    if (ok) return;
    await new Promise((r) => setTimeout(r, 50));
  }
  throw new Error(`nothing listens on ${HOST}:${port} after ${ms} ms`);
}

/**
 * Writes `conf` (mosquitto.conf lines) to dir/mosquitto.conf, starts mosquitto on it and resolves once
 * every one of `ports` accepts connections; the process is the caller's to stop. A mosquitto that does
 * not come up is stopped and its stderr is the error.
 */
export async function spawnMosquitto(dir: string, conf: string[], ports: number[]): Promise<ChildProcess> {
  const file = join(dir, 'mosquitto.conf');
  writeFileSync(file, [...conf, ''].join('\n'));
  const proc = spawn(MOSQUITTO, ['-c', file], { stdio: ['ignore', 'ignore', 'pipe'] });
  let stderr = '';
  proc.stderr?.on('data', (c: Buffer) => {
    stderr += c.toString();
  });
  try {
    for (const port of ports) await waitForPort(port);
  } catch (err) {
    proc.kill('SIGTERM');
    throw new Error(`mosquitto did not start: ${stderr.trim() || String(err)}`);
  }
  return proc;
}
