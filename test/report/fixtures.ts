import type { RunResult, Status, VariantResult } from '../../harness/runner/result.js';
import type { LabEvent } from '../../simulators/common/events.js';

/** Client output nobody should trust: markup, a CDATA terminator, control characters, ANSI, non-ASCII. */
export const NASTY =
  'curl: (35) <script>alert("x")</script> ]]> & done\u0000\u0007\u001b[31mred\u001b[0m ' +
  'caf\u00e9 \u65e5\u672c\u8a9e \ud83d\ude80 lone\ud800 \ufffe\r\nprogress 10%\rprogress 100%';

const T0 = 1_763_890_000_000.25;

function event(offset: number, source: string, type: string, data: unknown): LabEvent {
  return { time: T0 + offset, source, type, data };
}

function base(scenario: string, variant: string, status: Status): VariantResult {
  return {
    scenario,
    variant,
    title: `${scenario} title`,
    file: `scenarios/${scenario}.yaml`,
    backend: 'loopback',
    status,
    expected: { result: 'pass' },
    observed: { result: 'pass', detail: 'HTTP 200' },
    explanation: [],
    phases: [],
    durationMs: 0,
    startedAt: '2026-11-23T10:00:00.000Z',
    events: [],
  };
}

/** Passed: all phases finished, a few lab events. */
export function passed(): VariantResult {
  return {
    ...base('https-endpoint', 'fixed', 'passed'),
    phases: [
      { name: 'dns', start: 0, end: 2 },
      { name: 'tcp', start: 2, end: 10 },
      { name: 'tls', start: 10, end: 50 },
      { name: 'first-byte', start: 50, end: 180 },
    ],
    durationMs: 182,
    explanation: ['the client got HTTP 200 from api.example.com'],
    client: { argv: ['curl', '-sS', 'https://api.example.com/'], exitCode: 0, signal: null, stdout: 'ok' },
    events: [
      event(0, 'api', 'connection', { id: 1, remote: '127.0.0.1:50000' }),
      event(180.5, 'api', 'closed', { id: 1, bytesIn: 517, bytesOut: 3000, durationMs: 180 }),
    ],
  };
}

/** Failed with a class mismatch: expected tcp.timeout, the client saw tls.untrusted-root; nasty stderr. */
export function failed(): VariantResult {
  return {
    ...base('tls-inspection', 'broken', 'failed'),
    expected: { result: 'fail', class: 'tcp.timeout', atLeastMs: 5000 },
    observed: { result: 'fail', class: 'tls.untrusted-root', detail: 'curl exit 60: <self-signed> ]]>' },
    explanation: [
      'the inspector re-signed api.example.com with <its own root>',
      'timing: took 75ms, < 5.00s',
    ],
    phases: [
      { name: 'dns', start: 0, end: 1 },
      { name: 'tcp', start: 1, end: 5 },
      { name: 'proxy-connect', start: 5, end: 25 },
      { name: 'tls', start: 25, end: 75 },
    ],
    durationMs: 75,
    client: {
      argv: ['curl', '-sS', 'https://api.example.com/'],
      exitCode: 60,
      signal: null,
      stdout: '',
      stderr: `line one\nline two\n${NASTY}`,
    },
    events: [
      event(0, 'inspector', 'connection', { id: 7, remote: '127.0.0.1:41000' }),
      event(6, 'inspector', 'connect-allowed', { target: 'api.example.com:443', rule: 'default' }),
      event(70.25, 'inspector', 'tls-client-error', {
        remote: '127.0.0.1:41000',
        alert: 'unknown_ca',
        message: '<script>alert(1)</script>',
      }),
    ],
  };
}

/** Failed the other way: expected a timeout, the client passed; its TCP phase never finished. */
export function stalled(): VariantResult {
  return {
    ...base('vpn-routing', 'broken', 'failed'),
    expected: { result: 'fail', class: 'tcp.timeout' },
    observed: { result: 'pass', detail: 'HTTP 200' },
    explanation: ['the request left through wg-arc'],
    phases: [
      { name: 'dns', start: 0, end: 3 },
      { name: 'tcp', start: 3 },
    ],
    durationMs: 5003,
    events: [],
  };
}

/** Skipped: a capability is missing. */
export function skipped(): VariantResult {
  return {
    ...base('geo-dns', 'north-america', 'skipped'),
    observed: null,
    skipReason: 'needs cmd:dig: not found on PATH',
  };
}

/** Errored: the harness broke; a multi-line message. */
export function errored(): VariantResult {
  return {
    ...base('tunnel', 'rotate', 'errored'),
    observed: null,
    error: {
      code: 'E_LAB_START',
      message: 'simulator tunnel failed to start\nsecond <line>',
      hint: 'see the simulator options',
    },
    events: [event(0, 'lab', 'start-failed', { simulator: 'tunnel' })],
  };
}

export function runOf(results: VariantResult[], durationMs = 4210): RunResult {
  const totals: Record<Status, number> = { passed: 0, failed: 0, skipped: 0, errored: 0 };
  for (const r of results) totals[r.status]++;
  return {
    schemaVersion: 1,
    tool: { name: 'fieldlab', version: '0.1.0' },
    startedAt: '2026-11-23T10:00:00.000Z',
    durationMs,
    backend: 'loopback',
    results,
    totals,
  };
}

/** One of each kind: 1 passed, 2 failed, 1 skipped, 1 errored. */
export function mixedRun(): RunResult {
  return runOf([passed(), failed(), stalled(), skipped(), errored()]);
}

/** A load variant: the fleet came back, one threshold held, one crossed (as fleet-reconnect/broken). */
export function loaded(): VariantResult {
  return {
    ...base('fleet-reconnect', 'broken', 'passed'),
    expected: { result: 'fail', class: 'load.threshold' },
    observed: {
      result: 'fail',
      class: 'load.threshold',
      detail: "thresholds crossed: reconnected 'rate==1'",
    },
    durationMs: 6000,
    load: {
      driver: 'node',
      script: 'mqtt-fleet',
      vus: 200,
      durationMs: 6000,
      iterations: 150,
      errors: 50,
      metrics: {
        reconnect_ms: {
          type: 'trend',
          unit: 'ms',
          values: {
            count: 150,
            avg: 900,
            min: 100,
            med: 800,
            max: 4000,
            'p(50)': 800,
            'p(90)': 2500,
            'p(95)': 3100,
            'p(99)': 3900,
          },
        },
        reconnected: { type: 'rate', values: { passes: 150, fails: 50, value: 0.75 } },
        connack_refused: { type: 'counter', unit: 'CONNACKs', values: { count: 420, rate: 70 } },
      },
      thresholds: [
        { metric: 'reconnected', expression: 'rate==1', aggregation: 'rate', value: 0.75, ok: false },
        { metric: 'reconnect_ms', expression: 'p(95)<30000', aggregation: 'p(95)', value: 3100, ok: true },
      ],
      histogram: {
        metric: 'reconnect_ms',
        unit: 'ms',
        buckets: [
          { from: 100, to: 1050, count: 90 },
          { from: 1050, to: 2000, count: 30 },
          { from: 2000, to: 2950, count: 20 },
          { from: 2950, to: 4000, count: 10 },
        ],
      },
      series: {
        metric: 'connects',
        unit: 'connects/s',
        stepMs: 500,
        points: [0, 180, 40, 20, 60, 20, 10, 0],
      },
    },
  };
}
