import { describe, expect, it } from 'vitest';
import { PHASE_NAMES, type Phase, type PhaseName } from '../../harness/probe/phases.js';
import type { VariantResult } from '../../harness/runner/result.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { type LoadedScenario, loadScenarios } from '../../harness/scenario/load.js';
import { faultSchema, type Variant } from '../../harness/scenario/model.js';
import { useTempStateDir } from '../helpers/state-dir.js';

/**
 * Lab-derived phases for the catalogue's real clients (the Azure and AWS device SDKs, MQTT.js, the tunnel
 * localproxy, curl), by protocol: each shows the phases its protocol reached, in connection order, and a
 * latency toxic shows up in the phase it delays. The examples run from dist/ (`npm run build` first).
 */
useTempStateDir('fl-labph-');

const { loaded } = await loadScenarios(['scenarios']);

function find(scenario: string, variant: string): { l: LoadedScenario; v: Variant } {
  const l = loaded.find((x) => x.scenario.name === scenario);
  const v = l?.scenario.variants.find((x) => x.name === variant);
  if (!l || !v) throw new Error(`no ${scenario}/${variant} in the catalogue`);
  return { l, v };
}

async function run(scenario: string, variant: string, patch: Partial<Variant> = {}): Promise<VariantResult> {
  const { l, v } = find(scenario, variant);
  const r = await runVariant(l, { ...v, ...patch }, { backend: 'loopback' });
  if (r.status === 'skipped') return r;
  expect(r.error).toBeUndefined();
  expect(r.status, r.explanation.join('\n')).toBe('passed');
  return r;
}

const lab = (r: VariantResult) => r.phases.filter((p) => p.source === 'lab');

/** Lab phase names present, each with a finished instance. */
function finished(r: VariantResult): Set<PhaseName> {
  return new Set(
    lab(r)
      .filter((p) => p.end !== undefined)
      .map((p) => p.name),
  );
}

/** dns ≤ tcp ≤ proxy ≤ tls ≤ app ≤ first-message: the first start of each, in connection order. */
function expectOrdered(phases: readonly Phase[]): void {
  const first = new Map<PhaseName, number>();
  for (const p of phases) first.set(p.name, Math.min(first.get(p.name) ?? Infinity, p.start));
  const starts = PHASE_NAMES.filter((n) => first.has(n)).map((n) => [n, first.get(n)!] as const);
  for (let i = 1; i < starts.length; i++) {
    expect(starts[i]![1], `${starts[i]![0]} starts before ${starts[i - 1]![0]}`).toBeGreaterThanOrEqual(
      starts[i - 1]![1],
    );
  }
  for (const p of phases) if (p.end !== undefined) expect(p.end).toBeGreaterThanOrEqual(p.start);
}

/** The lab phases of one connection (the relay's name, `hub#1`) that carry `name`. */
function onConnection(r: VariantResult, name: PhaseName): Phase[] {
  return lab(r).filter((p) => p.name === name);
}

const TIMEOUT = { timeout: 120_000 };

describe('lab phases for the catalogue clients', () => {
  it(
    'MQTT over TLS (Azure IoT device SDK): tcp, tls, app (CONNACK), first message on the hub connection',
    TIMEOUT,
    async () => {
      const r = await run('wrong-device-key', 'fixed');
      if (r.status === 'skipped') return;
      expect([...finished(r)]).toEqual(expect.arrayContaining(['tcp', 'tls', 'app-handshake', 'first-byte']));
      const conns = new Set(lab(r).map((p) => p.connection));
      expect([...conns]).toContain('hub#1');
      expectOrdered(lab(r));
    },
  );

  it(
    'AMQP over WebSocket through the CONNECT proxy (Azure IoT device SDK): proxy, then tls, CBS, telemetry',
    TIMEOUT,
    async () => {
      const r = await run('amqp-port-blocked', 'fixed');
      if (r.status === 'skipped') return;
      expect([...finished(r)]).toEqual(
        expect.arrayContaining(['tcp', 'proxy-connect', 'tls', 'app-handshake', 'first-byte']),
      );
      expect(onConnection(r, 'proxy-connect').map((p) => p.connection)).toEqual(['proxy#1']);
      expect(onConnection(r, 'app-handshake').map((p) => p.connection)).toEqual(['hub.https#1']);
      expectOrdered(lab(r));
    },
  );

  it('MQTT over TLS (AWS IoT device SDK v2): the same phases at the AWS persona', TIMEOUT, async () => {
    const r = await run('device-advisor-tls', 'fixed-sdk');
    if (r.status === 'skipped') return;
    expect([...finished(r)]).toEqual(expect.arrayContaining(['tcp', 'tls', 'app-handshake', 'first-byte']));
    expectOrdered(lab(r));
  });

  it(
    'DNS then MQTT over TLS (AWS fleet provisioning): the lab resolver’s answer comes first',
    TIMEOUT,
    async () => {
      const r = await run('geo-endpoint', 'fixed-europe');
      if (r.status === 'skipped') return;
      expect([...finished(r)]).toEqual(
        expect.arrayContaining(['dns', 'tcp', 'tls', 'app-handshake', 'first-byte']),
      );
      expectOrdered(lab(r));
    },
  );

  it('MQTT over WebSocket through the proxy (MQTT.js)', TIMEOUT, async () => {
    const r = await run('proxy-port-policy', 'fixed');
    if (r.status === 'skipped') return;
    expect([...finished(r)]).toEqual(
      expect.arrayContaining(['tcp', 'proxy-connect', 'tls', 'app-handshake', 'first-byte']),
    );
    expectOrdered(lab(r));
  });

  it(
    'secure tunnel (localproxy): data-plane upgrade as app, the stream start as first message',
    TIMEOUT,
    async () => {
      const r = await run('tunnel-ssh', 'fixed');
      if (r.status === 'skipped') return;
      expect([...finished(r)]).toEqual(expect.arrayContaining(['tcp', 'tls', 'app-handshake', 'first-byte']));
      expect(onConnection(r, 'first-byte').every((p) => p.connection?.startsWith('tunnels.data#'))).toBe(
        true,
      );
      expectOrdered(lab(r));
    },
  );

  it(
    'HTTPS with curl: the client’s phases and the lab’s side by side, on one time axis',
    TIMEOUT,
    async () => {
      const r = await run('https-endpoint', 'fixed');
      if (r.status === 'skipped') return;
      const client = r.phases.filter((p) => p.source === 'client');
      expect(client.map((p) => p.name)).toEqual(expect.arrayContaining(['tcp', 'tls']));
      expect([...finished(r)]).toEqual(expect.arrayContaining(['tcp', 'tls', 'app-handshake']));
      // Moved to count from the spawn, curl's TLS overlaps the lab's (it cannot end before the lab's began).
      const clientTls = client.find((p) => p.name === 'tls')!;
      const labTls = onConnection(r, 'tls')[0]!;
      expect(clientTls.end!).toBeGreaterThanOrEqual(labTls.start);
    },
  );

  it('a blackholed port shows where it stalled: tcp never ended (…)', TIMEOUT, async () => {
    const r = await run('mqtt-port-blocked', 'broken-blackholed');
    if (r.status === 'skipped') return;
    const tcp = onConnection(r, 'tcp');
    expect(tcp.length).toBeGreaterThan(0);
    expect(tcp.every((p) => p.end === undefined)).toBe(true);
  });

  it('a 300 ms downstream latency on the hub shows up in the TLS phase, not in tcp', TIMEOUT, async () => {
    const { v } = find('wrong-device-key', 'fixed');
    const latency = faultSchema.parse({ target: 'hub', type: 'latency', latency: 300, stream: 'downstream' });
    const r = await run('wrong-device-key', 'fixed', { faults: [...v.faults, latency] });
    if (r.status === 'skipped') return;
    const tls = onConnection(r, 'tls').filter((p) => p.connection === 'hub#1');
    expect(tls).toHaveLength(1);
    const d = tls[0]!.end! - tls[0]!.start;
    // The server's flight waits 300 ms on its way down: the client's Finished cannot come back sooner.
    expect(d).toBeGreaterThanOrEqual(300);
    const tcp = onConnection(r, 'tcp').find((p) => p.connection === 'hub#1')!;
    expect(tcp.end! - tcp.start).toBeLessThan(d);
  });

  it(
    'a 300 ms latency on the way to the proxy shows up in the proxy phase (the CONNECT arrives late)',
    TIMEOUT,
    async () => {
      const { v } = find('amqp-port-blocked', 'fixed');
      const latency = faultSchema.parse({
        target: 'proxy',
        type: 'latency',
        latency: 300,
        stream: 'upstream',
      });
      const r = await run('amqp-port-blocked', 'fixed', { faults: [...v.faults, latency] });
      if (r.status === 'skipped') return;
      const proxy = onConnection(r, 'proxy-connect');
      expect(proxy).toHaveLength(1);
      expect(proxy[0]!.end! - proxy[0]!.start).toBeGreaterThanOrEqual(300);
    },
  );

  it('a 300 ms DNS delay shows up in the dns phase', TIMEOUT, async () => {
    const r = await run('geo-endpoint', 'fixed-europe', {
      simulators: { dns: { faults: { 'global.iot.example.com': { delay: 300 } } } },
    });
    if (r.status === 'skipped') return;
    const dns = onConnection(r, 'dns');
    expect(dns.length).toBeGreaterThan(0);
    expect(Math.max(...dns.map((p) => (p.end ?? p.start) - p.start))).toBeGreaterThanOrEqual(300);
  });
});
