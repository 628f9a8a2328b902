import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { type Lab, startLab } from '../../harness/lab/lab.js';
import { isFieldlabError } from '../../simulators/common/index.js';
import { missing } from '../helpers/capability.js';
import { dig, geoOptions, lastAddress } from './helpers.js';

let state: string;
let lab: Lab | undefined;
beforeEach(() => {
  state = mkdtempSync(join(tmpdir(), 'fl-resolver-lab-'));
  process.env.FIELDLAB_STATE_DIR = state;
});
afterEach(async () => {
  await lab?.stop();
  lab = undefined;
  delete process.env.FIELDLAB_STATE_DIR;
  rmSync(state, { recursive: true, force: true });
});

describe.skipIf(missing('cmd:dig'))('a resolver declared in a lab', () => {
  it('forwards a zone to the lab geo-dns by name and answers the lab host names itself', async () => {
    const { zones, locations } = geoOptions(60);
    lab = await startLab({
      name: 't',
      hosts: [{ name: 'device.example.com' }],
      simulators: [
        {
          name: 'route53',
          type: 'geo-dns',
          host: 'ns1.lab.example.com',
          port: 0,
          options: { zones, locations },
        },
        {
          name: 'isp',
          type: 'resolver',
          host: 'resolver.isp.example.net',
          port: 0,
          options: { persona: 'isp-na', forward: [{ zone: 'iot.example.com', to: ['route53'] }] },
        },
      ],
    });
    const ep = lab.sim('isp').endpoints.find((e) => e.name === 'dns-udp')!;
    expect(lab.sim('isp').endpoints.map((e) => e.name)).toEqual(['dns-udp', 'dns-tcp', 'dot', 'doh']);
    const global = await dig(ep.host, ep.port, ['global.iot.example.com', 'A']);
    expect(global.status).toBe('NOERROR');
    expect(global.flags).toContain('ra');
    expect(lastAddress(global)).toMatch(/^127\.53\.0\.[23]$/);
    const device = await dig(ep.host, ep.port, ['device.example.com', 'A']);
    expect(lastAddress(device)).toBe(lab.hosts.get('device.example.com'));
    expect(lab.events.some((e) => e.source === 'isp' && e.type === 'upstream-query')).toBe(true);
  });

  it('names a forward target that is not a geo-dns of the lab', async () => {
    const err = await startLab({
      name: 't',
      hosts: [],
      simulators: [
        {
          name: 'isp',
          type: 'resolver',
          host: 'resolver.isp.example.net',
          port: 0,
          options: { forward: [{ zone: 'iot.example.com', to: ['route53'] }] },
        },
      ],
    }).then(
      (l) => {
        lab = l;
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(isFieldlabError(err) && err.message).toMatch(/forward\[0\]\.to\[0\]: no geo-dns named route53/);
  });
});
