import { readFileSync } from 'node:fs';
import { connect } from 'node:tls';
import { execa } from 'execa';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startContainerLab } from '../../harness/backends/container/index.js';
import type { Lab } from '../../harness/lab/lab.js';
import { missing } from '../helpers/capability.js';
import { within } from '../helpers/within.js';
import { ensureImage, IMAGE } from './helpers.js';

/**
 * Where a container lab puts its simulators: peers (a DPS and its hub) in one container answering to
 * both lab host names, every container at a fixed address its certificates name, and the files made once
 * per lab (the JITP device CA) shared by the regions' containers.
 */
describe.skipIf(missing('docker', 'cmd:mosquitto_pub'))('container lab placement', () => {
  let lab: Lab;
  beforeAll(async () => {
    await ensureImage();
    lab = await startContainerLab(
      {
        name: 'place',
        simulators: [
          {
            name: 'hub',
            type: 'iot-hub',
            host: 'hub.iot.example.com',
            options: { devices: [{ deviceId: 'd1' }] },
          },
          {
            name: 'dps',
            type: 'dps',
            host: 'global.dps.example.com',
            options: { hub: 'hub', enrollments: [{ registrationId: 'r1' }] },
          },
          {
            name: 'us',
            type: 'aws-iot',
            host: 'us-east-1.iot.example.com',
            options: { region: 'us-east-1', claim: false, jitp: { templateName: 'JITPTemplate' } },
          },
          {
            name: 'eu',
            type: 'aws-iot',
            host: 'eu-west-1.iot.example.com',
            options: { region: 'eu-west-1', claim: false, jitp: { templateName: 'JITPTemplate' } },
          },
        ],
      },
      { image: IMAGE },
    );
  }, 900_000);
  afterAll(async () => {
    await lab?.stop();
  }, 120_000);

  it('runs a DPS with its hub in one container under both names; other hosts have their own address', () => {
    const hub = lab.hosts.get('hub.iot.example.com');
    expect(hub).toMatch(/^198\.18\.\d+\.\d+$/);
    expect(lab.hosts.get('global.dps.example.com')).toBe(hub);
    const us = lab.hosts.get('us-east-1.iot.example.com');
    const eu = lab.hosts.get('eu-west-1.iot.example.com');
    expect(new Set([hub, us, eu]).size).toBe(3);
    expect(lab.sim('dps').endpoints[0]?.host).toBe(hub);
  });

  it('serves a certificate that names the container’s address (a client dialling the IP verifies it)', async () => {
    const ep = lab.sim('hub').endpoints[0];
    if (!ep) throw new Error('the hub has no endpoint');
    const ca = readFileSync(lab.pki.trust.bundlePath);
    // Node checks the IP against the certificate's IP SANs (no servername for an address).
    const socket = connect({ host: ep.host, port: ep.port, ca });
    try {
      await within(
        new Promise<void>((resolve, reject) => {
          socket.once('secureConnect', resolve);
          socket.once('error', reject);
        }),
        20_000,
        'the TLS handshake with the hub at its address',
      );
      expect(socket.authorized).toBe(true);
    } finally {
      socket.destroy();
    }
  });

  it('registers the lab’s one JITP device CA in every region: a device provisions in eu-west-1', async () => {
    const us = lab.sim('us').vars;
    const eu = lab.sim('eu').vars;
    expect(eu.jitpCa).toBe(us.jitpCa);
    const ep = lab.sim('eu').endpoints[0];
    if (!ep) throw new Error('eu-west-1 has no endpoint');
    // Paths in the vars are the containers' (/lab/...): the same files on this side of the mount.
    const host = (p: string | undefined) => `${lab.dir}${String(p).replace(/^\/lab/, '')}`;
    const publish = () =>
      execa(
        'mosquitto_pub',
        [
          ...['-h', ep.host, '-p', String(ep.port), '--cafile', lab.pki.trust.bundlePath],
          ...['--cert', host(us.jitpCert), '--key', host(us.jitpKey), '-i', 'jitp-sensor-1'],
          ...['-t', 'things/jitp-sensor-1/telemetry', '-q', '1', '-m', '{}'],
        ],
        { reject: false, timeout: 20_000 },
      );
    // The first connection registers the certificate and is dropped (JITP); the next one publishes.
    const first = await publish();
    expect(first.exitCode).not.toBe(0);
    const second = await publish();
    expect(second.exitCode, second.stderr).toBe(0);
    expect(lab.events.some((e) => e.source === 'eu' && e.type === 'jitp-registered')).toBe(true);
  });
});
