import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { readFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { type AddressBlock, claimBlock } from '../../harness/lab/addresses.js';
import {
  type DpsHandle,
  type IotHubHandle,
  startDps,
  start as startHub,
} from '../../simulators/iot-hub/index.js';
import { type PkiHandle, start as startPki } from '../../simulators/pki/index.js';
import { missing } from '../helpers/capability.js';

/**
 * The official Azure IoT Java SDK (iot-device-client 2.x, provisioning-device-client 2.x: proton-j, strict
 * about AMQP types) against the hub and DPS, on AMQP and AMQP over WebSocket. It hard-codes ports 5671 and
 * 443, so the services listen on those ports at a loopback block of their own (root), and the JVM resolves
 * their names through a hosts file (-Djdk.net.hosts.file). Dependencies come from Maven Central (pom.xml).
 */
const JAVA_DIR = fileURLToPath(new URL('./java/', import.meta.url));
const HUB = 'hub.iot.example.com';
const DPS = 'global.dps.example.com';
const SCOPE = '0ne00FAB001';

describe.skipIf(missing('root', 'cmd:java', 'cmd:javac', 'cmd:mvn'))('the Azure IoT Java SDK', () => {
  let work: string;
  let classpath: string;
  let block: AddressBlock;
  let pki: PkiHandle;
  let hub: IotHubHandle;
  let dps: DpsHandle | undefined;

  beforeAll(async () => {
    work = mkdtempSync(join(tmpdir(), 'fl-java-sdk-'));
    const cpFile = join(work, 'cp.txt');
    // Resolves (and on first use downloads) the SDK's jars into the local Maven repository.
    await execa(
      'mvn',
      [
        '-q',
        '-B',
        '-f',
        join(JAVA_DIR, 'pom.xml'),
        'dependency:build-classpath',
        `-Dmdep.outputFile=${cpFile}`,
      ],
      { timeout: 240_000 },
    );
    const deps = (await readFile(cpFile, 'utf8')).trim();
    await execa('javac', ['-cp', deps, '-d', join(work, 'classes'), join(JAVA_DIR, 'Probe.java')], {
      timeout: 60_000,
    });
    classpath = `${join(work, 'classes')}:${deps}`;
    block = claimBlock();
    writeFileSync(join(work, 'hosts'), `${block.address(1)} ${HUB}\n${block.address(2)} ${DPS}\n`);
    pki = await startPki({ name: 'pki', dir: work });
    const hubCert = await pki.issueServer([HUB]);
    hub = await startHub({
      hostName: HUB,
      host: block.address(1),
      ports: { mqtts: 8883, amqps: 5671, https: 443 },
      tls: { certPem: hubCert.chainPem, keyPem: hubCert.keyPem },
    });
  }, 300_000);
  afterAll(async () => {
    await hub?.stop();
    await pki?.stop();
    block?.release();
    if (work) rmSync(work, { recursive: true, force: true });
  });
  afterEach(async () => {
    await dps?.stop();
    dps = undefined;
  });

  async function probe(mode: 'hub' | 'dps', env: Record<string, string>) {
    const r = await execa(
      'java',
      [`-Djdk.net.hosts.file=${join(work, 'hosts')}`, '-cp', classpath, 'Probe', mode],
      {
        reject: false,
        timeout: 60_000,
        env: { TRUST_PEM: pki.trust.bundlePath, ...env },
      },
    );
    const line = r.stdout.trim().split('\n').pop() ?? '';
    try {
      return JSON.parse(line) as { ok?: boolean; error?: string; status?: string; message?: string } & Record<
        string,
        string
      >;
    } catch {
      throw new Error(
        `Probe printed no JSON (exit ${r.exitCode}, timed out: ${r.timedOut}): ${r.stdout}\n${r.stderr}`,
      );
    }
  }

  for (const protocol of ['AMQPS', 'AMQPS_WS'] as const) {
    it(`${protocol}: opens (CBS put-token) and sends; a wrong key is UNAUTHORIZED, not a timeout`, async () => {
      const key = hub.addDevice(`java-${protocol}`);
      const cs = (k: string) => `HostName=${HUB};DeviceId=java-${protocol};SharedAccessKey=${k}`;
      // 20 s instead of the SDK's 60 s: a reply it cannot read shows as a timeout well within the test.
      const ok = await probe('hub', {
        CONNECTION_STRING: cs(key),
        PROTOCOL: protocol,
        AUTH_TIMEOUT_S: '20',
        BODY: 'hi',
      });
      expect(ok).toEqual({ ok: true });
      expect(hub.messages(`java-${protocol}`).map((m) => m.body.toString())).toEqual(['hi']);

      const bad = await probe('hub', {
        CONNECTION_STRING: cs(Buffer.alloc(32, 4).toString('base64')),
        PROTOCOL: protocol,
        AUTH_TIMEOUT_S: '20',
        BODY: 'no',
      });
      expect(bad.status).toBe('UNAUTHORIZED');
    }, 150_000);

    it(`${protocol}: DPS registration with a symmetric key is assigned`, async () => {
      const cert = await pki.issueServer([DPS]);
      dps = await startDps({
        hostName: DPS,
        host: block.address(2),
        idScope: SCOPE,
        ports: { mqtts: 8883, amqps: 5671, https: 443 },
        tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
        hub,
        retryAfterSeconds: 1,
      });
      const key = dps.addEnrollment(`reg-java-${protocol.toLowerCase()}`);
      const out = await probe('dps', {
        DPS_HOST: DPS,
        ID_SCOPE: SCOPE,
        REG_ID: `reg-java-${protocol.toLowerCase()}`,
        KEY: key,
        PROTOCOL: protocol,
      });
      expect(out).toMatchObject({
        ok: true,
        assignedHub: HUB,
        deviceId: `reg-java-${protocol.toLowerCase()}`,
      });
    }, 90_000);
  }
});
