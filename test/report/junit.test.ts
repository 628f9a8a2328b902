import { XMLParser, XMLValidator } from 'fast-xml-parser';
import { describe, expect, it } from 'vitest';
import { renderJUnit } from '../../harness/report/junit.js';
import { failed, mixedRun, passed, runOf } from './fixtures.js';

type Attrs = Record<string, string>;
interface TestCase extends Attrs {}
type Node = Record<string, unknown>;

const parser = new XMLParser({
  ignoreAttributes: false,
  attributeNamePrefix: '',
  parseAttributeValue: false,
  parseTagValue: false,
  trimValues: false,
  isArray: (name) => ['testsuite', 'testcase', 'property'].includes(name),
});

function parse(xml: string): { testsuites: Node & { testsuite?: Array<Node & { testcase: Node[] }> } } {
  expect(XMLValidator.validate(xml)).toBe(true);
  return parser.parse(xml);
}

function text(n: unknown): string {
  if (typeof n === 'string') return n;
  if (n && typeof n === 'object' && '#text' in n) return String((n as { '#text': unknown })['#text']);
  return '';
}

// biome-ignore lint/suspicious/noControlCharactersInRegex: XML 1.0 forbids exactly these
const XML_ILLEGAL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\ufffe\uffff]/;

describe('renderJUnit', () => {
  it('counts tests, failures, errors and skips on <testsuites> and each <testsuite>', () => {
    const doc = parse(renderJUnit(mixedRun()));
    const ts = doc.testsuites as Attrs;
    expect(ts.name).toBe('fieldlab');
    expect(ts.tests).toBe('5');
    expect(ts.failures).toBe('2');
    expect(ts.errors).toBe('1');
    expect(ts.skipped).toBe('1');
    expect(ts.time).toBe('4.210');
    const suites = doc.testsuites.testsuite!;
    expect(suites.map((s) => s.name)).toEqual([
      'https-endpoint',
      'tls-inspection',
      'vpn-routing',
      'geo-dns',
      'tunnel',
    ]);
    const tls = suites[1]! as Node & Attrs;
    expect(tls).toMatchObject({ tests: '1', failures: '1', errors: '0', skipped: '0' });
    expect(tls.file).toBe('scenarios/tls-inspection.yaml');
  });

  it('groups variants of one scenario into one <testsuite>', () => {
    const second = { ...failed(), scenario: 'https-endpoint', variant: 'broken' };
    const doc = parse(renderJUnit(runOf([passed(), second])));
    const suites = doc.testsuites.testsuite!;
    expect(suites).toHaveLength(1);
    expect(suites[0]).toMatchObject({ name: 'https-endpoint', tests: '2', failures: '1' });
    expect(suites[0]!.testcase.map((c) => c.name)).toEqual(['fixed', 'broken']);
    // Suite time is the sum of its cases: 182ms + 75ms.
    expect(suites[0]!.time).toBe('0.257');
  });

  it('writes one <testcase> per variant with classname, name, numeric time and file', () => {
    const doc = parse(renderJUnit(mixedRun()));
    const cases = doc.testsuites.testsuite!.flatMap((s) => s.testcase) as TestCase[];
    expect(cases.map((c) => `${c.classname} ${c.name}`)).toEqual([
      'fieldlab.https-endpoint fixed',
      'fieldlab.tls-inspection broken',
      'fieldlab.vpn-routing broken',
      'fieldlab.geo-dns north-america',
      'fieldlab.tunnel rotate',
    ]);
    for (const c of cases) {
      expect(c.time).toMatch(/^\d+\.\d{3}$/);
      expect(Number.isFinite(Number(c.time))).toBe(true);
      expect(c.file).toMatch(/^scenarios\/.+\.yaml$/);
    }
    expect(cases[0]!.time).toBe('0.182');
  });

  it('marks failed, errored and skipped cases the way CI tools read them', () => {
    const doc = parse(renderJUnit(mixedRun()));
    const cases = doc.testsuites.testsuite!.flatMap((s) => s.testcase);
    const [ok, mismatch, wrongWay, skip, err] = cases as Array<Node>;
    expect(ok).not.toHaveProperty('failure');
    expect(ok).not.toHaveProperty('skipped');

    const f1 = mismatch!.failure as Attrs;
    expect(f1.message).toBe('expected fail tcp.timeout ≥5.00s, observed fail tls.untrusted-root in 75ms');
    expect(f1.type).toBe('tls.untrusted-root');
    expect(text(f1)).toContain('the inspector re-signed api.example.com with <its own root>');
    expect(text(f1)).toContain('hint: add the issuing root');

    const f2 = wrongWay!.failure as Attrs;
    expect(f2.message).toBe('expected fail tcp.timeout, observed pass');
    expect(f2.type).toBe('mismatch');

    expect((skip!.skipped as Attrs).message).toBe('needs cmd:dig: not found on PATH');
    expect(skip).not.toHaveProperty('failure');

    const e = err!.error as Attrs;
    expect(e.type).toBe('E_LAB_START');
    expect(e.message).toBe('E_LAB_START: simulator tunnel failed to start');
    expect(text(e)).toContain('second <line>');
    expect(text(e)).toContain('hint: see the simulator options');
  });

  it('puts explanation, phases and the lab timeline in <system-out>, client stderr in <system-err>', () => {
    const doc = parse(renderJUnit(mixedRun()));
    const cases = doc.testsuites.testsuite!.flatMap((s) => s.testcase);
    const out = text(cases[1]!['system-out']);
    expect(out).toContain('the inspector re-signed api.example.com');
    expect(out).toMatch(/proxy-connect\s+20ms \(5ms → 25ms\)/);
    expect(out).toMatch(/\+6\.0ms\s+inspector\s+connect-allowed\s+target=api\.example\.com:443/);
    expect(out).toContain('message=<script>alert(1)</script>');
    const err = text(cases[1]!['system-err']);
    expect(err).toContain('curl: (35) <script>alert("x")</script> ]]> & done\\x00\\x07red café 日本語 🚀');
    expect(cases[0]).not.toHaveProperty('system-err'); // no stderr, no element
  });

  it('escapes markup and removes characters XML 1.0 cannot hold', () => {
    const xml = renderJUnit(mixedRun());
    expect(xml.startsWith('<?xml version="1.0" encoding="UTF-8"?>')).toBe(true);
    expect(xml).not.toContain('<script>');
    expect(xml).not.toContain(']]>');
    expect(xml).not.toMatch(XML_ILLEGAL);
    // Lone surrogates would make the document unencodable as UTF-8.
    expect(Buffer.from(xml, 'utf8').toString('utf8')).toBe(xml);
    expect(xml).toContain('日本語');
  });

  it('bounds <system-out> events and <system-err> size, keeping the tail of stderr', () => {
    const r = failed();
    r.events = Array.from({ length: 700 }, (_, i) => ({
      time: 1e12 + i,
      source: 'api',
      type: 'tick',
      data: { i },
    }));
    r.client = { ...r.client, stderr: `${'x'.repeat(100_000)}\nthe last line` };
    const doc = parse(renderJUnit(runOf([r])));
    const c = doc.testsuites.testsuite![0]!.testcase[0]!;
    const out = text(c['system-out']);
    expect(out.match(/ api {2}tick /g)).toHaveLength(500);
    expect(out).toContain('… 200 more in the JSON report');
    const err = text(c['system-err']);
    expect(err.length).toBeLessThan(70 * 1024);
    expect(err).toMatch(/^… \(\d+ earlier characters cut\)/);
    expect(err.endsWith('the last line')).toBe(true);
  });

  it('gives each testcase its phase totals by source as properties', () => {
    const r = passed();
    r.phases = [
      { name: 'tcp', start: 2, end: 10, source: 'client' },
      { name: 'tcp', start: 1, end: 13.25, source: 'lab', connection: 'api#1' },
      { name: 'app-handshake', start: 13, end: 18, source: 'lab', connection: 'api#1' },
      { name: 'first-byte', start: 18, source: 'lab', connection: 'api#1' },
    ];
    const doc = parse(renderJUnit(runOf([r])));
    const tc = doc.testsuites.testsuite?.[0]?.testcase[0] as Node & { properties?: { property: Attrs[] } };
    const props = Object.fromEntries((tc.properties?.property ?? []).map((p) => [p.name, p.value]));
    expect(props).toEqual({
      'phase.tcp.client': '8.0',
      'phase.tcp.lab': '12.3',
      'phase.app.lab': '5.0',
      'phase.first-message.lab': 'never ended',
    });
  });

  it('renders a run with zero results', () => {
    const doc = parse(renderJUnit(runOf([], 0)));
    expect(doc.testsuites).toMatchObject({ name: 'fieldlab', tests: '0', failures: '0', time: '0.000' });
    expect(doc.testsuites.testsuite).toBeUndefined();
  });
});
