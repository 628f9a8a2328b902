import { describe, expect, it } from 'vitest';
import { checkExpectation } from '../../harness/runner/expectation.js';
import type { LabEvent } from '../../simulators/common/events.js';

const event = (source: string, type: string, data: Record<string, unknown>): LabEvent => ({
  time: 0,
  source,
  type,
  data,
});

describe('checkExpectation', () => {
  it('passes when class, timing bounds, lab events and output all match', () => {
    const problems = checkExpectation(
      {
        result: 'fail',
        class: 'tcp.timeout',
        within: 10_000,
        atLeast: 1000,
        labSaw: [{ source: 'api-relay', type: 'toxic-applied', match: { type: 'timeout' } }],
        labNeverSaw: [{ source: 'api', type: 'request' }],
        output: 'timed out',
      },
      { ok: false, class: 'tcp.timeout', detail: 'curl exit 28' },
      5000,
      [event('api-relay', 'toxic-applied', { type: 'timeout' })],
      'curl: (28) Connection timed out',
    );
    expect(problems).toEqual([]);
  });

  it('names every mismatch', () => {
    const problems = checkExpectation(
      {
        result: 'fail',
        class: 'tcp.reset',
        within: 100,
        atLeast: 50,
        labSaw: [{ source: 'proxy', type: 'connect-denied' }],
        labNeverSaw: [{ source: 'proxy', type: 'connect-allowed' }],
        output: '^ok$',
      },
      { ok: false, class: 'tcp.refused', detail: 'exit 7' },
      200,
      [event('proxy', 'connect-allowed', {})],
      'nope',
    );
    expect(problems).toEqual([
      'expected fail tcp.reset, observed fail tcp.refused: exit 7',
      'expected the client to finish within 100ms, it took 200ms',
      "expected the client's output to match /^ok$/; it did not",
      'expected proxy to see connect-denied; it did not',
      'expected proxy never to see connect-allowed; it did',
    ]);
  });

  it('a pass expectation fails on any failure, and a fail expectation on a pass', () => {
    const none = { labSaw: [], labNeverSaw: [] };
    expect(
      checkExpectation({ result: 'pass', ...none }, { ok: false, class: 'dns.nodata', detail: 'x' }, 1, []),
    ).toEqual(['expected pass, observed fail dns.nodata: x']);
    expect(checkExpectation({ result: 'fail', class: 'dns.nodata', ...none }, { ok: true }, 1, [])).toEqual([
      'expected fail dns.nodata, observed pass',
    ]);
  });
});
