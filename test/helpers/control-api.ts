import { randomBytes } from 'node:crypto';
import type { AddressInfo } from 'node:net';
import { startControlApi } from '../../harness/backends/remote/http-server.js';
import { type Lab, startLab } from '../../harness/lab/lab.js';

/**
 * A loopback lab with one https-server behind its relay, and the worker's HTTP control API in front of it
 * with a fresh secret: what a container worker serves, here in this process. What it starts is pushed on
 * `cleanups` (run in reverse after each test).
 */
export async function startControlledLab(
  name: string,
  cleanups: Array<() => Promise<unknown>>,
): Promise<{ lab: Lab; port: number; token: string }> {
  const lab = await startLab({
    name,
    simulators: [{ name: 'api', type: 'https-server', host: 'api.iot.example.com', port: 0 }],
  });
  cleanups.push(() => lab.stop());
  const token = randomBytes(32).toString('base64url');
  const server = await startControlApi(lab, { token, host: '127.0.0.1', port: 0 });
  cleanups.push(() => new Promise((r) => server.close(r)));
  return { lab, port: (server.address() as AddressInfo).port, token };
}
