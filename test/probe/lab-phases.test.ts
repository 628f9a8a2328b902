import { describe, expect, it } from 'vitest';
import { labPhases } from '../../harness/probe/lab-phases.js';
import type { Phase } from '../../harness/probe/phases.js';
import type { LabEvent } from '../../simulators/common/events.js';

/** Lab phases from events as the relays and simulators emit them (shapes from their events.ts). */
const T0 = 1_800_000_000_000;

function ev(at: number, source: string, type: string, data: unknown): LabEvent {
  return { time: T0 + at, source, type, data };
}

/** name → [start, end] of the lab phases on one connection. */
function spans(phases: Phase[], connection?: string): Record<string, [number, number | undefined]> {
  const out: Record<string, [number, number | undefined]> = {};
  for (const p of phases) {
    if (connection !== undefined && p.connection !== connection) continue;
    out[p.name] = [p.start, p.end];
  }
  return out;
}

/** A relay connection in front of `sim`, its upstream connected from `local`. */
function relayed(at: number, sim: string, id: number, local: string): LabEvent[] {
  return [
    ev(at, `${sim}-relay`, 'connection', { id, remote: `127.0.0.1:${40000 + id}` }),
    // The simulator often announces the connection before the relay hears its connect: tied by address.
    ev(at + 1, sim, 'connection', { id: `mqtts-${id}`, remote: local }),
    ev(at + 2, `${sim}-relay`, 'upstream-connected', { id, ms: 2, local }),
  ];
}

describe('labPhases', () => {
  it('MQTT over TLS: tcp at the relay, then tls, app (CONNACK) and first message, on one connection', () => {
    const events = [
      ...relayed(10, 'hub', 1, '127.0.0.1:50001'),
      ev(40, 'hub', 'tls-established', { remote: '127.0.0.1:50001', protocol: 'TLSv1.3', alpn: false }),
      ev(55, 'hub', 'device-authenticated', { deviceId: 'd1', transport: 'mqtt' }),
      ev(90, 'hub', 'telemetry', { deviceId: 'd1', transport: 'mqtt', body: Buffer.from('{}') }),
      ev(95, 'hub', 'closed', { id: 'mqtts-1', bytesIn: 1, bytesOut: 1, durationMs: 90 }),
    ];
    const phases = labPhases(events, T0);
    expect(phases.every((p) => p.source === 'lab' && p.connection === 'hub#1')).toBe(true);
    expect(spans(phases)).toEqual({
      tcp: [10, 12],
      tls: [12, 40],
      'app-handshake': [40, 55],
      'first-byte': [55, 90],
    });
  });

  it('counts from the origin given (the client start): earlier events are negative', () => {
    const phases = labPhases(relayed(10, 'hub', 1, '127.0.0.1:50001'), T0 + 20);
    expect(spans(phases).tcp).toEqual([-10, -8]);
  });

  it("ends TLS at the client's alert; a client that hangs up without one leaves it open (…)", () => {
    const alert = labPhases(
      [
        ...relayed(0, 'iot', 1, '127.0.0.1:50001'),
        ev(8, 'iot', 'tls-client-error', { remote: '127.0.0.1:50001', alert: 'unknown_ca', message: 'x' }),
        ev(9, 'iot', 'closed', { id: 'mqtts-1', bytesIn: 1, bytesOut: 1, durationMs: 8 }),
      ],
      T0,
    );
    expect(spans(alert)).toEqual({ tcp: [0, 2], tls: [2, 8] });
    const hangup = labPhases(
      [
        ...relayed(0, 'iot', 1, '127.0.0.1:50001'),
        ev(5000, 'iot', 'closed', { id: 'mqtts-1', bytesIn: 1, bytesOut: 1, durationMs: 5000 }),
        // Node clients verify after the handshake and just close: the server sees a reset, after the close.
        ev(5001, 'iot', 'tls-client-error', { remote: '?:0', code: 'ECONNRESET', message: 'socket hang up' }),
      ],
      T0,
    );
    expect(spans(hangup)).toEqual({ tcp: [0, 2], tls: [2, undefined] });
  });

  it('a connection the relay never got upstream (blackhole, refused upstream) has an open tcp phase', () => {
    const phases = labPhases(
      [
        ev(0, 'hub-relay', 'connection', { id: 1, remote: '127.0.0.1:40001' }),
        ev(0.2, 'hub-relay', 'toxic-applied', { id: 1, toxic: 'b', type: 'blackhole', stream: 'downstream' }),
      ],
      T0,
    );
    expect(phases).toEqual([{ name: 'tcp', start: 0, source: 'lab', connection: 'hub#1' }]);
  });

  it('a TLS listener that completed the handshake and never answered the protocol shows app as open', () => {
    const phases = labPhases(
      [
        ...relayed(0, 'broker', 1, '127.0.0.1:50001'),
        ev(20, 'broker', 'tls-established', { remote: '127.0.0.1:50001', protocol: 'TLSv1.3', alpn: false }),
        ev(900, 'broker', 'closed', { id: 'mqtts-1', bytesIn: 1, bytesOut: 1, durationMs: 900 }),
      ],
      T0,
    );
    expect(spans(phases)['app-handshake']).toEqual([20, undefined]);
  });

  it("proxy: CONNECT answered when the proxy's destination connected (200), or at the 407", () => {
    const allowed = labPhases(
      [
        ev(0, 'proxy-relay', 'connection', { id: 1, remote: '127.0.0.1:40001' }),
        ev(1, 'proxy-relay', 'upstream-connected', { id: 1, ms: 1, local: '127.0.0.1:50001' }),
        ev(1.5, 'proxy', 'connection', { id: 'c1', remote: '127.0.0.1:50001' }),
        ev(3, 'proxy', 'connect-allowed', { target: 'hub:443', rule: '#1', method: 'CONNECT' }),
        ev(50, 'proxy', 'closed', {
          id: 'c1',
          bytesIn: 1,
          bytesOut: 1,
          targetBytesOut: 1,
          targetBytesIn: 1,
          durationMs: 48,
          timings: { acceptedAt: T0 + 1.5, upstreamMs: 6.5, closedMs: 48 },
        }),
      ],
      T0,
    );
    expect(spans(allowed, 'proxy#1')).toEqual({ tcp: [0, 1], 'proxy-connect': [1.5, 8] });
    const denied = labPhases(
      [
        ev(0, 'proxy', 'connection', { id: 'c1', remote: '127.0.0.1:50001' }),
        ev(2, 'proxy', 'auth-required', { reason: 'missing', status: 407, target: 'hub:443' }),
      ],
      T0,
    );
    expect(spans(denied)).toEqual({ 'proxy-connect': [0, 2] });
  });

  it('TLS inspector: the client handshake with the forged leaf runs from the 200 to interception', () => {
    const phases = labPhases(
      [
        ev(0, 'inspector', 'connection', { id: 'c1', remote: '127.0.0.1:50001' }),
        ev(1, 'inspector', 'connect-allowed', { target: 'api:443', rule: 'intercept' }),
        ev(30, 'inspector', 'intercepted', { host: 'api', leafCached: false, issueMs: 20 }),
      ],
      T0,
    );
    expect(spans(phases)).toEqual({ 'proxy-connect': [0, 1], tls: [1, 30] });
  });

  it('dns: arrival to answer at the lab resolver; a dropped query never ends', () => {
    const q = { client: '127.0.0.1:5353', transport: 'udp', name: 'a.example', type: 'A', location: 'x' };
    const phases = labPhases(
      [
        ev(10, 'dns', 'query', { ...q, rcode: 'NOERROR', answers: [], reason: '', truncated: false, ms: 4 }),
        ev(20, 'dns', 'query', {
          ...q,
          rcode: 'NONE',
          answers: [],
          reason: 'fault drop',
          truncated: false,
          ms: 0,
        }),
      ],
      T0,
    );
    expect(phases.map((p) => [p.name, p.start, p.end])).toEqual([
      ['dns', 6, 10],
      ['dns', 20, undefined],
    ]);
  });

  it('events naming no connection go to the latest one not yet past that point (JITP: rejected, reconnect)', () => {
    const phases = labPhases(
      [
        ...relayed(0, 'iot', 1, '127.0.0.1:50001'),
        ev(10, 'iot', 'tls-established', { remote: '127.0.0.1:50001', protocol: 'TLSv1.3', alpn: false }),
        ev(12, 'iot', 'client-rejected', { clientId: 'd', returnCode: 5, reason: 'reconnect' }),
        ev(13, 'iot', 'closed', { id: 'mqtts-1', bytesIn: 1, bytesOut: 1, durationMs: 12 }),
        ...relayed(1000, 'iot', 2, '127.0.0.1:50002'),
        ev(1010, 'iot', 'tls-established', { remote: '127.0.0.1:50002', protocol: 'TLSv1.3', alpn: false }),
        ev(1015, 'iot', 'client-connected', { clientId: 'd' }),
        ev(1020, 'iot', 'publish', { clientId: 'd', topic: 't', qos: 1, retain: false, bytes: 2 }),
        // A second connection, still open, that only finished TLS: later publishes are not its.
        ...relayed(1030, 'iot', 3, '127.0.0.1:50003'),
        ev(1040, 'iot', 'tls-established', { remote: '127.0.0.1:50003', protocol: 'TLSv1.3', alpn: false }),
        ev(1041, 'iot', 'client-connected', { clientId: 'e' }),
        ev(1050, 'iot', 'publish', { clientId: 'e', topic: 't', qos: 1, retain: false, bytes: 2 }),
        ev(1060, 'iot', 'publish', { clientId: 'e', topic: 't', qos: 1, retain: false, bytes: 2 }),
      ],
      T0,
    );
    expect(spans(phases, 'iot#1')).toEqual({ tcp: [0, 2], tls: [2, 10], 'app-handshake': [10, 12] });
    expect(spans(phases, 'iot#2')).toEqual({
      tcp: [1000, 1002],
      tls: [1002, 1010],
      'app-handshake': [1010, 1015],
      'first-byte': [1015, 1020],
    });
  });

  it('a first message with no handshake answer of its own (DPS over MQTT) is not a stalled handshake', () => {
    const phases = labPhases(
      [
        ...relayed(0, 'dps', 1, '127.0.0.1:50001'),
        ev(10, 'dps', 'tls-established', { remote: '127.0.0.1:50001', protocol: 'TLSv1.3', alpn: false }),
        ev(25, 'dps', 'registration-request', { registrationId: 'r', transport: 'mqtt', operationId: 'o' }),
      ],
      T0,
    );
    expect(spans(phases)).toEqual({ tcp: [0, 2], tls: [2, 10], 'first-byte': [10, 25] });
  });

  it('tunnel: upgrade (peer-connected) is the app handshake; the stream start is the source peer’s first message', () => {
    const phases = labPhases(
      [
        ev(0, 'tunnels', 'connection', { id: 'a', remote: '127.0.0.1:1' }),
        ev(5, 'tunnels', 'peer-connected', {
          tunnelId: 't',
          mode: 'destination',
          protocol: 3,
          replaced: false,
        }),
        ev(10, 'tunnels', 'connection', { id: 'b', remote: '127.0.0.1:2' }),
        ev(15, 'tunnels', 'peer-connected', { tunnelId: 't', mode: 'source', protocol: 3, replaced: false }),
        ev(30, 'tunnels', 'stream-start', { tunnelId: 't', streamId: 1, serviceId: 'SSH', connectionId: 1 }),
        // The management API's refusals are not about a data-plane connection.
        ev(31, 'tunnels', 'auth-rejected', {
          operation: 'OpenTunnel',
          reason: 'x',
          errorType: 'y',
          status: 403,
        }),
      ],
      T0,
    );
    expect(spans(phases, 'tunnels#a')).toEqual({ 'app-handshake': [0, 5] });
    expect(spans(phases, 'tunnels#b')).toEqual({ 'app-handshake': [10, 15], 'first-byte': [15, 30] });
  });
});
