import { describe, expect, it } from 'vitest';
import { optionsFromFlags } from '../../harness/localproxy/cli.js';
import {
  localProxyOptionsSchema,
  parseDestinationApps,
  parseSourcePorts,
  resolveEndpoint,
  startLocalProxy,
} from '../../harness/localproxy/index.js';

const resolved = (o: Record<string, unknown>) =>
  localProxyOptionsSchema.parse({ mode: 'src', accessToken: 't', ...o });

describe('localproxy options', () => {
  it('-s: [ID=]port lists', () => {
    expect([...parseSourcePorts('5555')]).toEqual([['', 5555]]);
    expect([...parseSourcePorts('ssh=5555, http=8080')]).toEqual([
      ['ssh', 5555],
      ['http', 8080],
    ]);
    expect(() => parseSourcePorts('ssh=x')).toThrow(expect.objectContaining({ code: 'E_BAD_OPTION' }));
    expect(() => parseSourcePorts('a=1,a=2')).toThrow(/given twice/);
  });

  it('-d: [ID=]host:port lists; a bare port means 127.0.0.1 or the -b address, as localproxy', () => {
    expect([...parseDestinationApps('ssh=127.0.0.1:22,http=8080')]).toEqual([
      ['ssh', { host: '127.0.0.1', port: 22 }],
      ['http', { host: '127.0.0.1', port: 8080 }],
    ]);
    expect([...parseDestinationApps('22,web=lab.invalid:80', '198.51.100.7')]).toEqual([
      ['', { host: '198.51.100.7', port: 22 }],
      ['web', { host: 'lab.invalid', port: 80 }],
    ]);
    expect([...parseDestinationApps('22', '::1')]).toEqual([['', { host: '::1', port: 22 }]]);
    expect([...parseDestinationApps('[::1]:22')]).toEqual([['', { host: '::1', port: 22 }]]);
    expect(() => parseDestinationApps('ssh=nohost')).toThrow(
      expect.objectContaining({ code: 'E_BAD_OPTION' }),
    );
  });

  it('-r / -e: the endpoint, TLS on 443 unless a ws:// scheme says otherwise', () => {
    expect(resolveEndpoint(resolved({ region: 'eu-west-1' }))).toEqual({
      host: 'data.tunneling.iot.eu-west-1.amazonaws.com',
      port: 443,
      tls: true,
    });
    expect(resolveEndpoint(resolved({ endpoint: 'tunnel.lab', region: 'x' }))).toEqual({
      host: 'tunnel.lab',
      port: 443,
      tls: true,
    });
    expect(resolveEndpoint(resolved({ endpoint: '127.0.0.1:8443' }))).toMatchObject({
      port: 8443,
      tls: true,
    });
    expect(resolveEndpoint(resolved({ endpoint: 'ws://127.0.0.1:8080' }))).toMatchObject({
      port: 8080,
      tls: false,
    });
    expect(() => resolveEndpoint(resolved({}))).toThrow(expect.objectContaining({ code: 'E_BAD_OPTION' }));
  });

  it('-y selects the message format (V3 by default); the subprotocol stays 3.0 unless the lab asks', () => {
    expect(resolved({})).toMatchObject({ destinationClientType: 3, subprotocol: 3 });
    expect(resolved({ destinationClientType: 'V1' })).toMatchObject({
      destinationClientType: 1,
      subprotocol: 3,
    });
    expect(() => resolved({ subprotocol: 2 })).toThrow(/must not exceed subprotocol/);
    expect(optionsFromFlags({ sourceListenPort: '0', subprotocol: 1 }, {}).subprotocol).toBe(1);
    expect(resolved({ mode: 'dst' }).mode).toBe('destination');
  });

  it('CLI flags and environment map to options', () => {
    const o = optionsFromFlags(
      { sourceListenPort: 'ssh=0', sslHostVerify: false, capath: '/ca', proxyEndpoint: 'h:1' },
      { AWSIOT_TUNNEL_ACCESS_TOKEN: 'tok', https_proxy: 'http://u:p@127.0.0.1:3128' },
    );
    expect(o).toMatchObject({
      mode: 'source',
      accessToken: 'tok',
      noSslHostVerify: true,
      caPath: '/ca',
      endpoint: 'h:1',
      httpsProxy: 'http://u:p@127.0.0.1:3128',
    });
    const d = optionsFromFlags(
      { destinationApp: '22', accessToken: 'flag', destinationClientType: 'V2' },
      { AWSIOT_TUNNEL_ACCESS_TOKEN: 'env', HTTPS_PROXY: 'http://127.0.0.1:1' },
    );
    expect(d).toMatchObject({ mode: 'destination', accessToken: 'flag', destinationClientType: 'V2' });
    expect(d.httpsProxy).toBe('http://127.0.0.1:1');
  });

  it('reads the environment localproxy reads; flags win, and https_proxy wins over HTTPS_PROXY', () => {
    const env = {
      AWSIOT_TUNNEL_ACCESS_TOKEN: 'tok',
      AWSIOT_TUNNEL_CLIENT_TOKEN: 'c'.repeat(32),
      AWSIOT_TUNNEL_ENDPOINT: '127.0.0.1:8443',
      AWSIOT_TUNNEL_REGION: 'eu-west-1',
      https_proxy: 'http://127.0.0.1:3128',
      HTTPS_PROXY: 'http://127.0.0.1:9',
    };
    expect(optionsFromFlags({ sourceListenPort: '0' }, env)).toMatchObject({
      clientToken: 'c'.repeat(32),
      endpoint: '127.0.0.1:8443',
      region: 'eu-west-1',
      httpsProxy: 'http://127.0.0.1:3128',
    });
    expect(
      optionsFromFlags({ sourceListenPort: '0', clientToken: 'f'.repeat(32), proxyEndpoint: 'h:1' }, env),
    ).toMatchObject({ clientToken: 'f'.repeat(32), endpoint: 'h:1' });
  });

  it('bad options throw E_BAD_OPTION naming the field', async () => {
    const err = await startLocalProxy({
      mode: 'source',
      accessToken: 't',
      clientToken: 'short',
      endpoint: '127.0.0.1:1',
      sourceListenPort: '0',
    }).then(
      () => ({ code: 'none', message: 'started' }),
      (e: unknown) => e as { code: string; message: string },
    );
    expect(err).toMatchObject({ code: 'E_BAD_OPTION' });
    expect(err.message).toMatch(/options\.clientToken/);
    await expect(
      startLocalProxy({ mode: 'destination', accessToken: 't', endpoint: '127.0.0.1:1' }),
    ).rejects.toThrow(/-d\/--destination-app/);
  });
});
