import { describe, expect, it } from 'vitest';
import { renderConsole, renderProgress } from '../../harness/report/console.js';
import { errored, failed, mixedRun, passed, runOf, skipped, stalled } from './fixtures.js';

// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for escape codes is the point
const ANSI = /\u001b\[/;
// biome-ignore lint/suspicious/noControlCharactersInRegex: looking for raw control characters is the point
const RAW_CONTROL = /[\u0000-\u0008\u000b\u000c\u000e-\u001f\u007f]/;

function rowOf(text: string, scenario: string, variant: string): string {
  const row = text.split('\n').find((l) => l.includes(` ${scenario} `) && l.includes(` ${variant} `));
  if (!row) throw new Error(`no row for ${scenario}/${variant} in:\n${text}`);
  return row;
}

describe('renderConsole', () => {
  it('has one row per variant with mark, names, expected, observed and phase cells', () => {
    const text = renderConsole(mixedRun(), { color: false });
    const header = text.split('\n').find((l) => l.includes('scenario'));
    expect(header).toMatch(
      /scenario\s+variant\s+expected\s+observed\s+dns\s+tcp\s+proxy\s+tls\s+app\s+1st msg\s+total/,
    );

    const ok = rowOf(text, 'https-endpoint', 'fixed');
    expect(ok.trim().startsWith('✓')).toBe(true);
    // dns 2ms, tcp 8ms, no proxy, tls 40ms, no app, first byte 130ms, total 182ms, in column order.
    expect(ok).toMatch(/pass\s+pass\s+2ms\s+8ms\s+–\s+40ms\s+–\s+130ms\s+182ms$/);

    const bad = rowOf(text, 'tls-inspection', 'broken');
    expect(bad.trim().startsWith('✗')).toBe(true);
    expect(bad).toMatch(
      /fail tcp\.timeout ≥5\.00s\s+fail tls\.untrusted-root\s+1ms\s+4ms\s+20ms\s+50ms\s+–\s+–\s+75ms$/,
    );

    // A phase that never ended shows the open mark; the legend explains it.
    const open = rowOf(text, 'vpn-routing', 'broken');
    expect(open).toMatch(/fail tcp\.timeout\s+pass\s+3ms\s+…\s+–\s+–\s+–\s+–\s+5\.00s$/);
    expect(text).toContain('… phase started and never finished');

    expect(rowOf(text, 'geo-dns', 'north-america').trim().startsWith('–')).toBe(true);
    expect(rowOf(text, 'tunnel', 'rotate').trim().startsWith('!')).toBe(true);
  });

  it('shows lab phases, and client/lab where both measured a phase, with a legend', () => {
    const r = passed();
    r.phases = [
      { name: 'tcp', start: 2, end: 10, source: 'client' },
      { name: 'tcp', start: 1, end: 13, source: 'lab', connection: 'api#1' },
      { name: 'tls', start: 13, end: 40, source: 'lab', connection: 'api#1' },
      { name: 'app-handshake', start: 40, end: 45, source: 'lab', connection: 'api#1' },
      { name: 'first-byte', start: 45, source: 'lab', connection: 'api#1' },
    ];
    const text = renderConsole(runOf([r]), { color: false });
    // dns none, tcp client 8ms / lab 12ms, no proxy, tls 27ms (lab), app 5ms, first message never came.
    expect(rowOf(text, 'https-endpoint', 'fixed')).toMatch(
      /pass\s+pass\s+–\s+8ms\/12ms\s+–\s+27ms\s+5ms\s+…\s+182ms$/,
    );
    expect(text).toContain('a/b  measured by the client / seen by the lab');
    // Without a phase measured twice, no such legend.
    expect(renderConsole(runOf([passed()]), { color: false })).not.toContain('measured by the client /');
  });

  it('ends with the totals line, counts from the results, words in order', () => {
    const text = renderConsole(mixedRun(), { color: false });
    const lines = text.trimEnd().split('\n');
    expect(lines.at(-1)).toBe('1 passed, 2 failed, 1 skipped, 1 errored in 4.21s');
    expect(text.endsWith('\n')).toBe(true);
  });

  it('explains every non-passed variant and not the passed ones', () => {
    const text = renderConsole(mixedRun(), { color: false });
    // Failed: the mismatch, explanation, observed class summary + hint, the expected class.
    expect(text).toContain(
      '✗ tls-inspection/broken: expected fail tcp.timeout ≥5.00s, observed fail tls.untrusted-root in 75ms',
    );
    expect(text).toContain('    the inspector re-signed api.example.com with <its own root>');
    expect(text).toContain('tls.untrusted-root: TLS: certificate chain ends in an untrusted root');
    expect(text).toContain(
      "hint: add the issuing root (e.g. the inspecting proxy's) to the client's trust store",
    );
    expect(text).toContain('expected tcp.timeout: connection or response timed out');
    // Skipped: the reason. Errored: code, every message line, hint.
    expect(text).toContain('skip reason: needs cmd:dig: not found on PATH');
    expect(text).toContain('error E_LAB_START: simulator tunnel failed to start');
    expect(text).toContain('second <line>');
    expect(text).toContain('hint: see the simulator options');
    // The passed variant has a row but no block.
    expect(text).not.toContain('https-endpoint/fixed');
    expect(text).not.toContain('the client got HTTP 200');
  });

  it('shows only the last few stderr lines, cleaned of escapes and control characters', () => {
    const f = failed();
    f.client = { ...f.client, stderr: Array.from({ length: 12 }, (_, i) => `err line ${i + 1}`).join('\n') };
    const text = renderConsole(runOf([f]), { color: false });
    expect(text).toContain('client stderr (last 5 lines):');
    expect(text).toContain('| err line 12');
    expect(text).toContain('| err line 8');
    expect(text).not.toContain('err line 7');

    const nasty = renderConsole(mixedRun(), { color: false });
    expect(nasty).toContain(
      '| curl: (35) <script>alert("x")</script> ]]> & done\\x00\\x07red café 日本語 🚀',
    );
    expect(nasty).toContain('| progress 100%');
    expect(nasty).not.toMatch(ANSI);
    expect(nasty).not.toMatch(RAW_CONTROL);
  });

  it('colours only when asked', () => {
    expect(renderConsole(mixedRun(), { color: false })).not.toMatch(ANSI);
    const coloured = renderConsole(mixedRun(), { color: true });
    expect(coloured).toMatch(ANSI);
    // Stripped of colour, it is the plain report.
    // biome-ignore lint/suspicious/noControlCharactersInRegex: stripping SGR codes
    const plain = coloured.replace(/\u001b\[[0-9;]*m/g, '');
    expect(plain).toBe(renderConsole(mixedRun(), { color: false }));
  });

  it('verbose adds a block for passed variants, all phases and the lab timeline', () => {
    const text = renderConsole(runOf([passed(), stalled()]), { color: false, verbose: true });
    expect(text).toContain('✓ https-endpoint/fixed: passed: pass in 182ms');
    expect(text).toMatch(/first-byte\s+130ms \(50ms → 180ms\)/);
    expect(text).toMatch(/tcp\s+never ended \(from 3ms\)/);
    expect(text).toMatch(/\+0\.0ms\s+api\s+connection\s+id=1 remote=127\.0\.0\.1:50000/);
    expect(text).toMatch(/\+181ms\s+api\s+closed\s+id=1 bytesIn=517/);
  });

  it('handles a run with zero results', () => {
    const text = renderConsole(runOf([], 12), { color: true });
    expect(text).toContain('no variants ran');
    expect(text.trimEnd().split('\n').at(-1)).toBe('0 passed, 0 failed, 0 skipped, 0 errored in 12ms');
  });
});

describe('renderProgress', () => {
  it('is one line per finished variant', () => {
    expect(renderProgress(passed())).toBe('✓ https-endpoint/fixed  pass  182ms');
    expect(renderProgress(stalled())).toBe('✗ vpn-routing/broken  pass (expected fail tcp.timeout)  5.00s');
    expect(renderProgress(skipped())).toBe(
      '– geo-dns/north-america  skipped: needs cmd:dig: not found on PATH',
    );
    const e = renderProgress(errored());
    expect(e).toBe('! tunnel/rotate  error E_LAB_START: simulator tunnel failed to start');
    expect(renderProgress(passed(), { color: true })).toMatch(ANSI);
    for (const r of mixedRun().results) expect(renderProgress(r)).not.toContain('\n');
  });
});
