import { createServer, type Server, type Socket } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { run } from '../../examples/azure-device.js';
import { endpointOf } from '../../simulators/common/handle.js';
import { listen } from '../../simulators/common/net.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { HUB_HOST, type HubLab, startHubLab } from './helpers.js';

let pki: PkiHandle;
let lab: HubLab | undefined;
let silent: { server: Server; sockets: Set<Socket> } | undefined;
beforeAll(async () => {
  pki = await startPki({ name: 'pki' });
});
afterAll(() => pki.stop());
afterEach(async () => {
  if (silent) {
    for (const s of silent.sockets) s.destroy();
    await new Promise((r) => silent!.server.close(r));
    silent = undefined;
  }
  await lab?.stop();
  lab = undefined;
});

function env(l: HubLab, protocol: string, port?: number, key?: string): NodeJS.ProcessEnv {
  const k = key ?? l.hub.deviceKey('edge-1');
  return {
    UpstreamProtocol: protocol,
    https_proxy: l.proxy.proxyUrl(),
    IOTHUB_CA: pki.trust.bundlePath,
    IOTHUB_DEVICE_CONNECTION_STRING: `HostName=${HUB_HOST}${port ? `:${port}` : ''};DeviceId=edge-1;SharedAccessKey=${k}`,
    IOTHUB_TIMEOUT_MS: '5000',
  };
}

/** A port where nothing listens (bound, then closed): connecting is refused, as a REJECT firewall does. */
async function closedPort(): Promise<number> {
  const s = createServer();
  const port = await listen(s, '127.0.0.1', 0);
  await new Promise((r) => s.close(r));
  return port;
}

describe('examples/azure-device (UpstreamProtocol as IoT Edge reads it)', () => {
  it('AmqpWs through https_proxy: the hub acknowledges the message', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('edge-1');
    const r = await run(env(lab, 'AmqpWs'));
    expect(r).toMatchObject({ ok: true, protocol: 'AmqpWs' });
    expect(lab.hub.messages('edge-1').map((m) => m.transport)).toEqual(['amqp-ws']);
    expect(lab.proxy.stats().allowed).toBeGreaterThanOrEqual(1); // it went through the proxy
  });

  it('Amqp to a refused port fails fast (no 240 s of retries)', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('edge-1');
    const r = await run(env(lab, 'Amqp', await closedPort()));
    // The SDK reports a refused AMQP connection as NotConnectedError ('rhea: connection disconnected').
    expect(r).toMatchObject({ ok: false, errorClass: 'NotConnectedError' });
    expect(r.elapsedMs).toBeLessThan(5000);
    expect(lab.hub.messages('edge-1')).toHaveLength(0);
  });

  it('Amqp to a port that never answers fails within IOTHUB_TIMEOUT_MS', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('edge-1');
    const sockets = new Set<Socket>();
    const server = createServer((s) => {
      sockets.add(s); // accept, then say nothing: a blackholing middlebox
      s.on('error', () => undefined);
    });
    silent = { server, sockets };
    const port = await listen(server, '127.0.0.1', 0);
    const r = await run({ ...env(lab, 'Amqp', port), IOTHUB_TIMEOUT_MS: '1500' });
    expect(r).toMatchObject({ ok: false, errorClass: 'TimeoutError' });
    expect(r.elapsedMs).toBeGreaterThanOrEqual(1400);
    expect(r.elapsedMs).toBeLessThan(4500);
  });

  it('Mqtt on its own port works, and a wrong key gives UnauthorizedError', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('edge-1');
    const port = endpointOf(lab.hub, 'mqtts').port;
    expect(await run(env(lab, 'Mqtt', port))).toMatchObject({ ok: true });
    const bad = await run(env(lab, 'Http', undefined, Buffer.alloc(32, 3).toString('base64')));
    expect(bad).toMatchObject({ ok: false, errorClass: 'UnauthorizedError' });
  });

  it('an unknown UpstreamProtocol is a configuration error', async () => {
    lab = await startHubLab(pki);
    lab.hub.addDevice('edge-1');
    expect(await run(env(lab, 'Amqp-Ws'))).toMatchObject({ ok: false, errorClass: 'ConfigError' });
  });
});
