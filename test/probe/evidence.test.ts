import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { get as httpsGet } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { runCommand } from '../../harness/clients/command.js';
import type { FailureClass, Verdict } from '../../harness/probe/classes.js';
import { classifyCurl, curlTimingArgs } from '../../harness/probe/curl.js';
import { EVIDENCE_RULES, explain } from '../../harness/probe/evidence.js';
import { classifyError } from '../../harness/probe/node-errors.js';
import type { LabEvent } from '../../simulators/common/events.js';
import { missing } from '../helpers/capability.js';
import * as f from './fixtures.js';

const ev = (source: string, type: string, data: Record<string, unknown>): LabEvent => ({
  time: 0,
  source,
  type,
  data,
});
const failed = (cls: FailureClass, detail = 'client detail'): Verdict => ({ ok: false, class: cls, detail });

describe('explain() rules', () => {
  const table: [string, Verdict, LabEvent[], FailureClass, RegExp][] = [
    [
      'relay timeout confirms tcp.timeout',
      failed('tcp.timeout'),
      [ev('relay-1', 'toxic-applied', { id: 'c1', toxic: 'hold', type: 'timeout', stream: 'downstream' })],
      'tcp.timeout',
      /^the relay relay-1 held the connection \(toxic hold\)$/,
    ],
    [
      'relay blackhole explains a client timeout',
      failed('client.timeout'),
      [ev('relay-1', 'toxic-applied', { id: 'c1', toxic: 'bh', type: 'blackhole', stream: 'upstream' })],
      'client.timeout',
      /held the connection \(toxic bh\)/,
    ],
    [
      'reset_peer confirms tcp.reset',
      failed('tcp.reset'),
      [ev('relay-1', 'toxic-applied', { id: 'c1', toxic: 'rst', type: 'reset_peer', stream: 'downstream' })],
      'tcp.reset',
      /reset the connection \(toxic rst\)/,
    ],
    [
      'connect-denied beats a vague client error',
      failed('client.error'),
      [ev('proxy', 'connect-denied', { target: 'hub.example:5671', rule: 'deny-amqp', status: 403 })],
      'proxy.connect-denied',
      /^proxy proxy denied CONNECT hub\.example:5671 by rule deny-amqp \(403\)$/,
    ],
    [
      "destination-denied narrows a client's 403 to the lab's own refusal",
      failed('proxy.connect-denied'),
      [
        ev('proxy', 'destination-denied', {
          target: 'evil.example:443',
          destination: '127.0.0.9:443',
          status: 403,
          allowed: 'hub.iot.example.com, 127.20.1.2',
        }),
      ],
      'proxy.destination-denied',
      /^proxy proxy refused evil\.example:443: 127\.0\.0\.9:443 is not among the destinations it may reach \(hub\.iot\.example\.com, 127\.20\.1\.2\); map it to a lab host, or add it to the proxy's destinations$/,
    ],
    [
      'the proxy\'s 407 narrows an SDK\'s "Not authorized" to proxy.auth-required',
      failed('auth.rejected'),
      [ev('proxy', 'auth-required', { reason: 'missing' })],
      'proxy.auth-required',
      /^proxy proxy asked for credentials the client did not send \(407\)$/,
    ],
    [
      'the proxy\'s 403 narrows an SDK\'s "Not authorized" to proxy.connect-denied',
      failed('auth.rejected'),
      [ev('proxy', 'connect-denied', { target: 'hub.example:443', rule: 'deny-port', status: 403 })],
      'proxy.connect-denied',
      /^proxy proxy denied CONNECT hub\.example:443 by rule deny-port \(403\)$/,
    ],
    [
      'a hub that rejected the key keeps auth.rejected after a 407 challenge on the way',
      failed('auth.rejected'),
      [
        ev('proxy', 'auth-required', { reason: 'missing' }),
        ev('hub', 'auth-rejected', { deviceId: 'd1', transport: 'mqtt-ws', reason: 'bad signature' }),
      ],
      'auth.rejected',
      /^hub rejected the credentials of d1 over mqtt-ws: bad signature$/,
    ],
    [
      'destination-denied beats a vague client error',
      failed('client.error'),
      [
        ev('inspector', 'destination-denied', {
          target: 't:1',
          destination: 't:1',
          status: 403,
          allowed: 'x',
        }),
      ],
      'proxy.destination-denied',
      /^proxy inspector refused t:1/,
    ],
    [
      'auth-required confirms proxy.auth-required',
      failed('proxy.auth-required'),
      [ev('proxy', 'auth-required', { reason: 'wrong', status: 407 })],
      'proxy.auth-required',
      /rejected the credentials/,
    ],
    [
      'unknown_ca beats tls.handshake',
      failed('tls.handshake'),
      [ev('hub', 'tls-client-error', { remote: '127.0.0.1:5', alert: 'unknown_ca', message: 'x' })],
      'tls.untrusted-root',
      /^the client rejected hub's certificate with alert unknown_ca$/,
    ],
    [
      'unknown_ca is consistent with incomplete-chain',
      failed('tls.incomplete-chain'),
      [ev('hub', 'tls-client-error', { remote: 'r', alert: 'unknown_ca', message: 'x' })],
      'tls.incomplete-chain',
      /alert unknown_ca/,
    ],
    [
      'certificate_expired → tls.expired',
      failed('client.error'),
      [ev('hub', 'tls-client-error', { remote: 'r', alert: 'certificate_expired', message: 'x' })],
      'tls.expired',
      /certificate_expired/,
    ],
    [
      'proxy upstream-error → bad gateway',
      failed('client.error'),
      [ev('proxy', 'upstream-error', { target: 'hub:443', code: 'ECONNREFUSED', message: 'refused' })],
      'proxy.bad-gateway',
      /proxy proxy could not reach hub:443: ECONNREFUSED/,
    ],
    [
      'NXDOMAIN confirms dns.nxdomain',
      failed('dns.nxdomain'),
      [
        ev('dns', 'query', {
          client: 'c',
          name: 'x.example',
          type: 'A',
          rcode: 'NXDOMAIN',
          answers: [],
          reason: 'no zone',
        }),
      ],
      'dns.nxdomain',
      /answered NXDOMAIN for x\.example A \(no zone\)/,
    ],
    [
      'NOERROR without answers → nodata (numeric rcode too)',
      failed('client.error'),
      [ev('dns', 'query', { client: 'c', name: 'g.example', type: 'A', rcode: 0, answers: [] })],
      'dns.nodata',
      /has g\.example but no A record/,
    ],
    [
      'a plain CONNECT to a TLS port (server: "https proxy request")',
      failed('tcp.reset'),
      [
        ev('proxy', 'tls-client-error', {
          remote: 'r',
          code: 'ERR_SSL_HTTPS_PROXY_REQUEST',
          message: 'https proxy request',
        }),
      ],
      'tcp.reset',
      /^proxy speaks TLS but the client sent it a plain-HTTP CONNECT$/,
    ],
    [
      'the same, for a vague client verdict',
      failed('client.error'),
      [ev('proxy', 'tls-client-error', { remote: 'r', code: 'ERR_SSL_HTTPS_PROXY_REQUEST', message: 'x' })],
      'proxy.scheme-mismatch',
      /plain-HTTP CONNECT/,
    ],
  ];

  it.each(table)('%s', (_n, verdict, events, cls, line) => {
    const r = explain(verdict, events);
    expect(r.verdict).toMatchObject({ ok: false, class: cls });
    expect(r.explanation.some((l) => line.test(l))).toBe(true);
  });

  it('keeps the client class when the lab disagrees, and says what the lab saw', () => {
    const r = explain(failed('tls.hostname-mismatch'), [
      ev('proxy', 'connect-denied', { target: 't:1', rule: 'r', status: 403 }),
    ]);
    expect(r.verdict).toMatchObject({ class: 'tls.hostname-mismatch', detail: 'client detail' });
    expect(r.explanation).toEqual(['the lab also saw: proxy proxy denied CONNECT t:1 by rule r (403)']);
  });

  it('leaves successes and unrelated events alone, and folds repeated events', () => {
    expect(
      explain({ ok: true }, [ev('p', 'connect-denied', { target: 't', rule: 'r', status: 403 })]),
    ).toEqual({
      verdict: { ok: true },
      explanation: [],
    });
    expect(
      explain(failed('tcp.refused'), [ev('s', 'connection', { id: '1', remote: 'r' })]).explanation,
    ).toEqual([]);
    const e = ev('proxy', 'auth-required', { reason: 'missing', status: 407 });
    expect(explain(failed('proxy.auth-required'), [e, e, e]).explanation).toHaveLength(1);
  });

  it('lab wins keeps the client detail and records what the client said', () => {
    const r = explain(failed('tls.handshake', 'EPROTO'), [
      ev('hub', 'tls-client-error', { remote: 'r', alert: 'certificate_expired', message: 'x' }),
    ]);
    expect(r.verdict).toMatchObject({ class: 'tls.expired', detail: 'EPROTO' });
    expect(!r.verdict.ok && r.verdict.evidence).toContain('client said tls.handshake');
  });

  it('every rule has a unique id', () => {
    const ids = EVIDENCE_RULES.map((r) => r.id);
    expect(new Set(ids).size).toBe(ids.length);
  });
});

/**
 * What real clients send the server when they reject its certificate, fed through explain() as the
 * server's `tls-client-error` events: the documented table in evidence.ts comes from here.
 */
describe.skipIf(missing('cmd:curl', 'cmd:openssl'))('alerts real clients send', () => {
  let dir: string;
  let caFile: string;
  const pki = () => f.testPki();
  const chain = (l: f.Issued) => l.certPem + pki().intermediatePem;
  beforeAll(() => {
    dir = mkdtempSync(join(tmpdir(), 'fieldlab-evidence-'));
    caFile = join(dir, 'ca.pem');
    writeFileSync(caFile, pki().rootPem);
  });
  afterAll(() => rmSync(dir, { recursive: true, force: true }));
  afterEach(() => f.closeAll());

  const cases: [string, () => [string, string], string | undefined, FailureClass][] = [
    [
      'untrusted root',
      () => [pki().untrusted.certPem + pki().otherRootPem, pki().untrusted.keyPem],
      'unknown_ca',
      'tls.untrusted-root',
    ],
    ['expired', () => [chain(pki().expired), pki().expired.keyPem], 'certificate_expired', 'tls.expired'],
    [
      'not yet valid',
      () => [chain(pki().notYetValid), pki().notYetValid.keyPem],
      'bad_certificate',
      'tls.not-yet-valid',
    ],
    [
      'wrong host name',
      () => [chain(pki().wrongName), pki().wrongName.keyPem],
      undefined,
      'tls.hostname-mismatch',
    ],
  ];

  it.each(cases)('curl and Node: %s', async (_n, make, alert, cls) => {
    const [c, k] = make();
    const s = await f.tlsServer(c, k);
    const r = await runCommand({
      argv: [
        'curl',
        '-sS',
        '-o',
        '/dev/null',
        ...curlTimingArgs(),
        '--cacert',
        caFile,
        `https://localhost:${s.port}/`,
      ],
      timeoutMs: 10_000,
    });
    const nodeErr = await new Promise<unknown>((resolve) => {
      httpsGet(`https://localhost:${s.port}/`, { ca: [pki().rootPem] }, (res) => {
        res.resume();
        resolve(undefined);
      }).on('error', resolve);
    });
    // The server records client errors asynchronously: wait for both clients' records (or none).
    // curl (OpenSSL verifies in the handshake) sends the alert; Node verifies after the handshake in
    // JS and just closes, so the server sees only ECONNRESET "socket hang up", with no alert.
    if (alert) await expect.poll(() => s.clientErrors.length, { timeout: 3000 }).toBe(2);
    expect(s.clientErrors.map((e) => e.alert)).toEqual(alert ? [alert, undefined] : []);
    if (alert) expect(s.clientErrors[1]).toMatchObject({ code: 'ECONNRESET' });
    const events = s.clientErrors.map((e) => ev('server', 'tls-client-error', { remote: 'r', ...e }));
    for (const v of [classifyCurl(r), classifyError(nodeErr)]) {
      const out = explain(v, events);
      expect(out.verdict).toMatchObject({ ok: false, class: cls });
      const said = new RegExp(`^the client rejected server's certificate with alert ${alert}\\b`);
      if (alert) expect(out.explanation[0]).toMatch(said);
    }
    // A vague client verdict is sharpened by the alert (not for a name mismatch: no alert is sent).
    if (alert) expect(explain(failed('tls.handshake'), events).verdict).toMatchObject({ class: cls });
  });
});
