import { connect, type Socket } from 'node:net';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { type ConnectProxyHandle, start } from '../../simulators/connect-proxy/index.js';
import { within } from '../helpers/within.js';
import { startEcho } from './helpers.js';

/** Opens a tunnel through the proxy, echoes one line through it and closes it; resolves once closed. */
function tunnelOnce(proxyPort: number, target: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const s: Socket = connect(proxyPort, '127.0.0.1');
    let buf = '';
    s.on('data', (c: Buffer) => {
      buf += c.toString('latin1');
      if (buf.startsWith('HTTP/1.1 200') && buf.endsWith('ping\n')) s.end();
      else if (buf.includes('\r\n\r\n') && !buf.startsWith('HTTP/1.1 200')) reject(new Error(buf));
      else if (buf.endsWith('\r\n\r\n')) s.write('ping\n');
    });
    s.on('error', reject);
    s.on('close', () => resolve());
    s.write(`CONNECT ${target} HTTP/1.1\r\nHost: ${target}\r\n\r\n`);
  });
}

// Issue #12: every closed tunnel used to stay referenced (the splice dropped the listener that forgets a
// target socket), 2 sockets and ~3 KB per CONNECT for the life of the proxy.
describe('connect-proxy releases closed tunnels', () => {
  let echo: Awaited<ReturnType<typeof startEcho>>;
  let proxy: ConnectProxyHandle;
  beforeAll(async () => {
    echo = await startEcho();
    proxy = await start({ host: '127.0.0.1', allowPorts: [echo.port] });
  });
  afterAll(async () => {
    await proxy?.stop();
    await echo?.stop();
  });

  it('tracks no target socket once its tunnels have closed', async () => {
    const port = proxy.endpoints[0]?.port ?? 0;
    for (let i = 0; i < 20; i++)
      await within(tunnelOnce(port, `127.0.0.1:${echo.port}`), 5000, `tunnel ${i}`);
    expect(proxy.stats().allowed).toBe(20);
    // The far side closes a moment after the client: poll, bounded.
    const deadline = Date.now() + 5000;
    while (proxy.stats().activeTargets > 0 && Date.now() < deadline)
      await new Promise((r) => setImmediate(r));
    expect(proxy.stats().activeTargets).toBe(0);
    expect(proxy.stats().active).toBe(0);
  });
});
