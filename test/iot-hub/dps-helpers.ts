import { fileURLToPath } from 'node:url';
import { execa } from 'execa';
import { endpointOf } from '../../simulators/common/handle.js';
import { type ConnectProxyHandle, start as startProxy } from '../../simulators/connect-proxy/index.js';
import {
  type DpsHandle,
  type DpsOptions,
  type IotHubOptions,
  startDps,
} from '../../simulators/iot-hub/index.js';
import type { PkiHandle } from '../../simulators/pki/index.js';
import { HUB_HOST, type HubLab, startHubLab } from './helpers.js';

const SCRIPT = fileURLToPath(new URL('./provision.mjs', import.meta.url));

export type ProvisionTransport = 'Http' | 'Mqtt' | 'Amqp';

export interface ProvisionOutcome {
  result?: { status?: string; substatus?: string; assignedHub: string; deviceId: string };
  error?: string;
  message?: string;
}

/** A lab hub, a DPS assigning to it (HTTPS reached on 443 through a proxy map), all stopped together. */
export interface DpsLab {
  lab: HubLab;
  dps: DpsHandle;
  proxy: ConnectProxyHandle;
  stop(): Promise<void>;
  /** One registration with the official provisioning SDK in a child process (see provision.mjs). */
  provision(
    transport: ProvisionTransport,
    regId: string,
    credential: { key: string } | { certFile: string; keyFile: string },
  ): Promise<ProvisionOutcome>;
}

export async function startDpsLab(
  pki: PkiHandle,
  extra: Partial<DpsOptions> = {},
  hubExtra: Partial<IotHubOptions> = {},
): Promise<DpsLab> {
  const lab = await startHubLab(pki, hubExtra);
  const cert = await pki.issueServer([HUB_HOST, '127.0.0.1'], { file: 'dps' });
  const dps = await startDps({
    name: 'dps',
    hostName: HUB_HOST,
    tls: { certPem: cert.chainPem, keyPem: cert.keyPem },
    hub: lab.hub,
    retryAfterSeconds: 0,
    assigningPolls: 1,
    ...extra,
  });
  const proxy = await startProxy({
    name: 'dps-proxy',
    map: { [`${HUB_HOST}:443`]: `127.0.0.1:${endpointOf(dps, 'https').port}` },
  });
  return {
    lab,
    dps,
    proxy,
    async stop() {
      await proxy.stop();
      await dps.stop();
      await lab.stop();
    },
    async provision(transport, regId, credential) {
      const port = transport === 'Mqtt' ? endpointOf(dps, 'mqtts').port : endpointOf(dps, 'amqps').port;
      const r = await execa('node', [SCRIPT], {
        reject: false,
        timeout: 20_000,
        env: {
          NODE_EXTRA_CA_CERTS: pki.trust.bundlePath,
          DPS_HOST: transport === 'Http' ? HUB_HOST : `${HUB_HOST}:${port}`,
          ID_SCOPE: dps.idScope,
          REG_ID: regId,
          ...('key' in credential
            ? { KEY: credential.key }
            : { CERT_FILE: credential.certFile, KEY_FILE: credential.keyFile }),
          TRANSPORT: transport,
          PROXY: proxy.proxyUrl(),
        },
      });
      const line = r.stdout.trim().split('\n').pop() ?? '';
      try {
        return JSON.parse(line) as ProvisionOutcome;
      } catch {
        throw new Error(`provision.mjs printed no JSON (exit ${r.exitCode}): ${r.stdout}\n${r.stderr}`);
      }
    },
  };
}
