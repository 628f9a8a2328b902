import { describe, expect, it } from 'vitest';
import { Progress, renderStatusLine } from '../../harness/report/progress.js';
import { failed, passed } from './fixtures.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for escape codes is the point
const ESC = /\u001b|\r/;

/** A stream that records what is written; `isTTY` as a terminal's. */
function stream(isTTY: boolean, columns = 100) {
  const chunks: string[] = [];
  return {
    chunks,
    isTTY,
    columns,
    write(s: string) {
      chunks.push(s);
      return true;
    },
    /** What a terminal would show: each CR + erase-line starts the line over. */
    screen(): string[] {
      const lines: string[] = [''];
      // biome-ignore lint/suspicious/noControlCharactersInRegex: reading terminal escapes is the point
      for (const c of chunks.join('').split(/(\r\u001b\[2K|\n)/)) {
        if (c === '\n') lines.push('');
        else if (c === '\r\u001b[2K') lines[lines.length - 1] = '';
        else lines[lines.length - 1] += c;
      }
      return lines;
    },
  };
}

function clock(start = 0) {
  let t = start;
  return { now: () => t, advance: (ms: number) => (t += ms) };
}

describe('renderStatusLine', () => {
  it('says done/total, passed, failed, elapsed, the slowest running variant and each load', () => {
    const line = renderStatusLine({
      done: 12,
      total: 51,
      passed: 11,
      failed: 1,
      elapsedMs: 42_100,
      running: [
        { id: 'https-endpoint/fixed', ms: 300 },
        { id: 'tunnel-ssh/fixed', ms: 12_000 },
        { id: 'fleet/fixed', ms: 2_000, load: { vus: 50, rate: 120, unit: ' it/s' } },
      ],
    });
    expect(line).toBe(
      'fieldlab 12/51 · 11 passed · 1 failed · 42.1s · slowest tunnel-ssh/fixed 12.0s · load fleet/fixed 50 VUs 120 it/s',
    );
  });

  it('fits the width it is given', () => {
    const line = renderStatusLine(
      { done: 1, total: 2, passed: 1, failed: 0, elapsedMs: 10, running: [{ id: 'x'.repeat(200), ms: 1 }] },
      40,
    );
    expect(line.length).toBe(40);
    expect(line.endsWith('…')).toBe(true);
  });
});

describe('Progress', () => {
  it('not a TTY: plain lines only, one per finished variant with its place, no escape codes', () => {
    const out = stream(false);
    const c = clock();
    const p = new Progress(out, 2, { now: c.now });
    p.start('https-endpoint/fixed');
    p.start('tls-inspection/broken');
    p.finish(passed());
    p.load('tls-inspection/broken', { vus: 10, rate: 5.25 });
    p.load('tls-inspection/broken', { vus: 10, rate: 6 }); // within 10 s of the last: not printed
    c.advance(11_000);
    p.load('tls-inspection/broken', { vus: 20, rate: 7 });
    p.finish(failed());
    p.stop();
    const text = out.chunks.join('');
    expect(text).not.toMatch(ESC);
    expect(text.split('\n')).toEqual([
      '[1/2] ✓ https-endpoint/fixed  pass  182ms',
      '  tls-inspection/broken  load 10 VUs 5.3/s  0ms',
      '  tls-inspection/broken  load 20 VUs 7.0/s  11.0s',
      expect.stringMatching(/^\[2\/2\] ✗ tls-inspection\/broken {2}fail tls\.untrusted-root \(expected fail/),
      '',
    ]);
  });

  it('a TTY: one status line rewritten in place, finished lines printed above it, erased at the end', () => {
    const out = stream(true, 200);
    const c = clock();
    const p = new Progress(out, 3, { now: c.now, redrawMs: 0 });
    p.start('https-endpoint/fixed');
    c.advance(1500);
    p.start('tls-inspection/broken');
    c.advance(500);
    expect(out.screen()).toEqual([
      'fieldlab 0/3 · 0 passed · 0 failed · 1.50s · slowest https-endpoint/fixed 1.50s',
    ]);
    p.finish(passed());
    p.load('tls-inspection/broken', { vus: 50, rate: 120 });
    expect(out.screen()).toEqual([
      '✓ https-endpoint/fixed  pass  182ms',
      'fieldlab 1/3 · 1 passed · 0 failed · 2.00s · slowest tls-inspection/broken 500ms · load tls-inspection/broken 50 VUs 120/s',
    ]);
    p.finish(failed());
    expect(out.screen().at(-1)).toBe('fieldlab 2/3 · 1 passed · 1 failed · 2.00s');
    p.stop();
    expect(out.screen().at(-1)).toBe('');
    expect(out.screen()).toHaveLength(3);
  });

  it('a TTY: the status line fits the terminal', () => {
    const out = stream(true, 30);
    const p = new Progress(out, 1, { redrawMs: 0 });
    p.start(`a-very-long-scenario-name/${'fixed-'.repeat(20)}`);
    expect(out.screen()[0]!.length).toBe(29);
    p.stop();
  });
});
