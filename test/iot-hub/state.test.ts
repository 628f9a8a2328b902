import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect as tlsConnect } from 'node:tls';
import { setFlagsFromString } from 'node:v8';
import { runInNewContext } from 'node:vm';
import mqttPacket from 'mqtt-packet';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startLab } from '../../harness/lab/lab.js';
import { endpointOf } from '../../simulators/common/handle.js';
import { start as startHub } from '../../simulators/iot-hub/index.js';
import { within } from '../helpers/within.js';
import { hubTestBench } from './helpers.js';

const bench = hubTestBench();

setFlagsFromString('--expose-gc');
const gc = runInNewContext('gc') as () => void;
function heapAfterGc(): number {
  gc();
  gc();
  return process.memoryUsage().heapUsed;
}

/** One MQTT CONNECT with `clientId` and a username the hub refuses; resolves with the CONNACK return code. */
function refusedConnect(port: number, clientId: string): Promise<number> {
  const done = new Promise<number>((resolve, reject) => {
    const socket = tlsConnect(
      { host: '127.0.0.1', port, ca: bench.pki.root.certPem, servername: 'localhost' },
      () =>
        socket.write(
          mqttPacket.generate({
            cmd: 'connect',
            protocolId: 'MQTT',
            protocolVersion: 4,
            clean: true,
            keepalive: 0,
            clientId,
            username: 'not-this-hub/x/?api-version=2021-04-12',
            password: Buffer.from('SharedAccessSignature sr=x&sig=y&se=1'),
          }),
        ),
    );
    const parser = mqttPacket.parser({ protocolVersion: 4 });
    parser.on('packet', (p) => {
      socket.destroy();
      resolve(p.cmd === 'connack' ? (p.returnCode ?? -1) : -1);
    });
    socket.on('data', (d: Buffer) => parser.parse(d));
    socket.on('error', reject);
    socket.on('close', () => resolve(-1));
  });
  return within(done, 5000, 'CONNACK');
}

describe('iot-hub keeps no state for clients that never authenticate', () => {
  it('many distinct refused MQTT client ids leave the heap where it was', async () => {
    const cert = await bench.pki.issueServer(['localhost', '127.0.0.1']);
    const hub = bench.own(
      await startHub({ hostName: 'localhost', tls: { certPem: cert.chainPem, keyPem: cert.keyPem } }),
    );
    const port = endpointOf(hub, 'mqtts').port;
    // MQTT 3.1.1 §3.1.3.1 lets a client id be up to 65,535 bytes: 60 of 60 KB are 3.6 MB if kept.
    const id = (i: number) => `${i}-${'x'.repeat(60_000)}`;
    for (let i = 0; i < 5; i++) expect(await refusedConnect(port, id(i))).toBe(5); // warm-up
    const before = heapAfterGc();
    for (let i = 5; i < 65; i++) expect(await refusedConnect(port, id(i))).toBe(5); // 5 = not authorized
    const grown = heapAfterGc() - before;
    // Kept ids alone would be ≥ 3.6 MB; allow unrelated noise well below that.
    expect(grown).toBeLessThan(1.5 * 1024 * 1024);
    expect(hub.stats().authRejected).toBe(65);
  });
});

describe('iot-hub and dps in a lab', () => {
  let state: string;
  beforeAll(() => {
    state = mkdtempSync(join(tmpdir(), 'fl-iot-state-'));
    process.env.FIELDLAB_STATE_DIR = state;
  });
  afterAll(() => {
    delete process.env.FIELDLAB_STATE_DIR;
    rmSync(state, { recursive: true, force: true });
  });

  it('refuse `port` (which of mqtts, amqps, https?) and name `ports` as the fix', async () => {
    const hubDecl = { name: 'hub', type: 'iot-hub', host: 'hub.iot.example.com', options: {} };
    await expect(startLab({ name: 't', simulators: [{ ...hubDecl, port: 443 }] })).rejects.toMatchObject({
      code: 'E_BAD_OPTIONS',
      message: expect.stringContaining('port: 443'),
      hint: expect.stringContaining('ports: { https: 443'),
    });
    await expect(
      startLab({
        name: 't',
        simulators: [
          hubDecl,
          { name: 'dps', type: 'dps', host: 'dps.iot.example.com', port: 443, options: { hub: 'hub' } },
        ],
      }),
    ).rejects.toMatchObject({ code: 'E_BAD_OPTIONS', message: expect.stringContaining('dps (dps)') });
  });
});
