import { describe, expect, it } from 'vitest';
import { FieldlabError } from '../../simulators/common/index.js';
import { Policy, rulesFromOptions, start } from '../../simulators/connect-proxy/index.js';
import { connectProxyOptionsSchema } from '../../simulators/connect-proxy/options.js';

const resolve = (o: unknown) => connectProxyOptionsSchema.parse(o);

describe('connect-proxy policy', () => {
  it('defaults to Squid: CONNECT only to 443, plain HTTP to any port', () => {
    const { rules, defaultAction } = rulesFromOptions(resolve({}));
    const p = new Policy(rules, defaultAction);
    expect(p.evaluate('CONNECT', 'iothub.lab.example', 443)).toMatchObject({
      action: 'allow',
      name: 'default',
    });
    const d = p.evaluate('CONNECT', 'iothub.lab.example', 8883);
    expect(d).toMatchObject({ action: 'deny', index: 1, label: "#1 'deny-port-not-ssl'" });
    expect(d.reason).toBe('port 8883 is not in SSL_ports [443]');
    expect(p.evaluate('CONNECT', 'amqp.lab.example', 5671).action).toBe('deny');
    expect(p.evaluate('HTTP', 'plain.lab.example', 8080).action).toBe('allow');
    expect(p.explain()).toEqual([
      "#1 'deny-port-not-ssl': deny CONNECT when port is not in SSL_ports [443]",
      "#2 'default': allow",
    ]);
  });

  it('applies host allow/deny lists with wildcards, first match wins', () => {
    const { rules, defaultAction } = rulesFromOptions(
      resolve({
        allowPorts: [443, 8883],
        allowHosts: ['*.azure-devices.net'],
        denyHosts: ['evil.azure-devices.net'],
      }),
    );
    const p = new Policy(rules, defaultAction);
    expect(p.evaluate('CONNECT', 'Hub1.Azure-Devices.net', 8883).action).toBe('allow');
    expect(p.evaluate('CONNECT', 'evil.azure-devices.net', 443)).toMatchObject({
      action: 'deny',
      name: 'deny-hosts',
    });
    // `*.x` does not match the apex; nothing else is allowed.
    expect(p.evaluate('CONNECT', 'azure-devices.net', 443)).toMatchObject({
      action: 'deny',
      name: 'default',
    });
    expect(p.evaluate('HTTP', 'example.org', 80).action).toBe('deny');
  });

  it('takes explicit rules; the default is the opposite of the last rule, as in Squid', () => {
    const { rules, defaultAction } = rulesFromOptions(
      resolve({
        rules: [
          { action: 'deny', name: 'deny-port-8883', ports: [8883] },
          { action: 'allow', name: 'lab', hosts: ['*.lab.example'], ports: [443, 8883] },
        ],
      }),
    );
    expect(defaultAction).toBe('deny');
    const p = new Policy(rules, defaultAction);
    expect(p.evaluate('CONNECT', 'mqtt.lab.example', 8883).reason).toBe('port 8883 is in [8883]');
    expect(p.evaluate('CONNECT', 'a.lab.example', 443).label).toBe("#2 'lab'");
    expect(p.evaluate('CONNECT', 'other.example', 443).label).toBe("#3 'default'");
  });

  it('rejects bad options with E_BAD_OPTION naming the field', async () => {
    const bad = [
      { rules: [{ action: 'allow' }], allowPorts: [443] },
      { map: { 'no-port': '127.0.0.1:1' } },
      { upstream: 'ftp://x:1' },
      { allowPorts: [70000] },
      { auth: 'http://127.0.0.1:1' },
    ];
    for (const o of bad) {
      const err = await start(o as never).then(
        (h) => h.stop().then(() => undefined),
        (e: unknown) => e,
      );
      expect(err).toBeInstanceOf(FieldlabError);
      expect((err as FieldlabError).code).toBe('E_BAD_OPTION');
    }
  });

  it('builds proxy URLs with percent-encoded credentials', async () => {
    const h = await start({ auth: 'http://edge:p%40ss%3Aw%2Ford@127.0.0.1:3128' });
    try {
      const ep = h.endpoints[0]!;
      expect(ep).toMatchObject({ name: 'proxy', host: '127.0.0.1', protocol: 'http' });
      expect(h.proxyUrl()).toBe(`http://127.0.0.1:${ep.port}`);
      expect(h.proxyUrl({ username: 'edge', password: 'p@ss:w/ord' })).toBe(
        `http://edge:p%40ss%3Aw%2Ford@127.0.0.1:${ep.port}`,
      );
    } finally {
      await h.stop();
    }
  });
});
