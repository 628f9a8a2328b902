import { IoTSecureTunnelingClient, OpenTunnelCommand } from '@aws-sdk/client-iotsecuretunneling';
import { afterEach, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * A scenario's lab with `auth: sigv4`: the references a client is configured with (`${tunnels.region}`,
 * `${tunnels.accessKeyId}`, `${tunnels.secretAccessKey}`) sign requests the service accepts; a client
 * configured with another region fails as it would against AWS.
 */
useTempStateDir('fl-tunnel-auth-');
let lab: Lab | undefined;
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
});

function client(l: Lab, region: string): IoTSecureTunnelingClient {
  // By address: the lab's names resolve only through the lab, not this process's resolver.
  const api = l.sim('tunnels').endpoints.find((e) => e.name === 'api');
  return new IoTSecureTunnelingClient({
    endpoint: `http://${api?.host}:${api?.port}`,
    region,
    credentials: {
      accessKeyId: l.resolveRef('tunnels.accessKeyId'),
      secretAccessKey: l.resolveRef('tunnels.secretAccessKey'),
    },
    maxAttempts: 1,
  });
}

describe('tunnel-service auth: sigv4 in a lab', () => {
  it('hands clients the credentials and region it verifies', { timeout: 30_000 }, async () => {
    lab = await startLab({
      name: 'tunnel-auth',
      simulators: [
        {
          name: 'tunnels',
          type: 'tunnel-service',
          host: 'tunnels.example.com',
          options: { tls: false, region: 'ap-northeast-1', auth: 'sigv4' },
        },
      ],
    });
    expect(lab.resolveRef('tunnels.region')).toBe('ap-northeast-1');
    const good = client(lab, lab.resolveRef('tunnels.region'));
    const wrong = client(lab, 'us-east-1');
    try {
      await expect(good.send(new OpenTunnelCommand({}))).resolves.toHaveProperty('tunnelId');
      await expect(wrong.send(new OpenTunnelCommand({}))).rejects.toMatchObject({
        name: 'InvalidSignatureException',
        message: "Credential should be scoped to a valid region, not 'us-east-1'. ",
      });
    } finally {
      good.destroy();
      wrong.destroy();
    }
  });
});
