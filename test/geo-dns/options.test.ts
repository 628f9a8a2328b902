import { afterEach, describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { endpointOf, errorCode } from '../../simulators/common/index.js';
import { type GeoDnsEvents, type GeoDnsHandle, start } from '../../simulators/geo-dns/index.js';
import { missing } from '../helpers/capability.js';
import { dig } from './helpers.js';

const YAML = `
zones:
  - origin: iot.example.com
    soa: { mname: ns1.iot.example.com, rname: hostmaster.iot.example.com, minimum: 60 }
    ttl: 60
    records:
      - { name: global, type: CNAME, routing: geolocation, location: NA, value: us-east-1.iot.example.com, id: us }
      - { name: global, type: CNAME, routing: geolocation, location: '*', value: eu-west-1.iot.example.com, id: default }
      - { name: us-east-1, type: A, value: 127.53.0.2 }
locations: [ { cidr: 127.53.1.0/24, continent: NA, country: US, subdivision: WA }, { cidr: 127.53.2.0/24, continent: EU, country: DE } ]
faults: { global.iot.example.com: { rcode: servfail, cidr: 127.53.2.0/24 } }
`;

describe('geo-dns options', () => {
  let dns: GeoDnsHandle | undefined;
  afterEach(async () => {
    await dns?.stop();
    dns = undefined;
  });

  it('rejects bad options with E_BAD_OPTION naming the field', async () => {
    const bad = {
      zones: [{ origin: 'x.example', soa: { mname: 'a', rname: 'b' }, records: [{ name: 'a' }] }],
    };
    await expect(start(bad as never)).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
    const err = await start({ locations: [{ cidr: '300.1.1.0/24', continent: 'NA' }] }).catch((e) => e);
    expect(errorCode(err)).toBe('E_BAD_OPTION');
    expect(String(err.message)).toContain('locations[0].cidr');
    await expect(
      start({
        zones: [
          {
            origin: 'x.example',
            soa: { mname: 'a', rname: 'b' },
            records: [{ name: 'g', type: 'A', routing: 'geolocation', value: '127.0.0.1' }],
          },
        ],
      }),
    ).rejects.toMatchObject({ code: 'E_BAD_RECORD' });
  });

  it('stop() is idempotent and emits TCP connection events', async () => {
    dns = await start({});
    const port = endpointOf(dns, 'dns-tcp').port;
    const closed = new Promise<GeoDnsEvents['closed']>((r) => dns!.events.onceEvent('closed', r));
    const { connect } = await import('node:net');
    const s = connect(port, '127.0.0.1');
    await new Promise((r) => s.once('connect', r));
    s.end();
    await expect(closed).resolves.toMatchObject({ bytesIn: 0 });
    await Promise.all([dns.stop(), dns.stop()]);
  });

  describe.skipIf(missing('cmd:dig'))('the YAML lab config', () => {
    it('starts from the YAML of a lab config and answers by location', async () => {
      dns = await start(parse(YAML));
      const port = endpointOf(dns, 'dns-udp').port;
      const na = await dig(port, ['global.iot.example.com', '+subnet=127.53.1.0/24']);
      expect(na.answers.map((a) => a[4])).toEqual(['us-east-1.iot.example.com.', '127.53.0.2']);
      const eu = await dig(port, ['global.iot.example.com', '+subnet=127.53.2.0/24']);
      expect(eu.status).toBe('SERVFAIL'); // the fault applies to EU clients only
      const other = await dig(port, ['global.iot.example.com', '+subnet=127.53.9.0/24']);
      // Default → eu-west-1, which has no A record here: NXDOMAIN after the CNAME (RFC 6604 §2).
      expect(other.status).toBe('NXDOMAIN');
      expect(other.answers[0]?.[4]).toBe('eu-west-1.iot.example.com.');
    });
  });
});
