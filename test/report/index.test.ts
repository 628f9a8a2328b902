import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { XMLValidator } from 'fast-xml-parser';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { exitCodeFor, runResultSchema, writeReports } from '../../harness/report/index.js';
import { cleanText, lastLines } from '../../harness/report/text.js';
import { isFieldlabError } from '../../simulators/common/errors.js';
import { errored, failed, mixedRun, passed, runOf, skipped } from './fixtures.js';

let tmp: string;
beforeEach(() => {
  tmp = mkdtempSync(join(tmpdir(), 'fl-report-'));
});
afterEach(() => rmSync(tmp, { recursive: true, force: true }));

function sink(): { stream: PassThrough; text: () => string } {
  const stream = new PassThrough();
  const chunks: Buffer[] = [];
  stream.on('data', (c: Buffer) => chunks.push(c));
  return { stream, text: () => Buffer.concat(chunks).toString('utf8') };
}

describe('writeReports', () => {
  it('writes every asked-for report: console to stdout, the others as files in a new outDir', async () => {
    const out = join(tmp, 'a', 'b');
    const s = sink();
    const paths = await writeReports(mixedRun(), {
      outDir: out,
      reporters: ['console', 'json', 'junit', 'html'],
      stdout: s.stream,
      color: false,
    });
    expect(paths).toEqual([
      join(out, 'fieldlab-report.json'),
      join(out, 'junit.xml'),
      join(out, 'report.html'),
    ]);
    expect(s.text()).toContain('1 passed, 2 failed, 1 skipped, 1 errored in 4.21s');
    expect(s.text()).not.toContain('\u001b[');
    const json = JSON.parse(readFileSync(paths[0]!, 'utf8')) as unknown;
    expect(runResultSchema.safeParse(json).success).toBe(true);
    expect(XMLValidator.validate(readFileSync(paths[1]!, 'utf8'))).toBe(true);
    expect(readFileSync(paths[2]!, 'utf8')).toContain('<!doctype html>');
  });

  it('writes only what is asked, once, and makes no directory for console alone', async () => {
    const out = join(tmp, 'never');
    const s = sink();
    expect(
      await writeReports(runOf([passed()]), {
        outDir: out,
        reporters: ['console'],
        stdout: s.stream,
        color: true,
      }),
    ).toEqual([]);
    expect(existsSync(out)).toBe(false);
    expect(s.text()).toContain('\u001b[');

    const out2 = join(tmp, 'junit-only');
    const paths = await writeReports(runOf([passed()]), {
      outDir: out2,
      reporters: ['junit', 'junit'],
      stdout: sink().stream,
      color: false,
    });
    expect(paths).toEqual([join(out2, 'junit.xml')]);
    expect(existsSync(join(out2, 'fieldlab-report.json'))).toBe(false);
  });

  it('fails with E_REPORT_WRITE when the directory cannot be made', async () => {
    const file = join(tmp, 'a-file');
    writeFileSync(file, 'x');
    const err = await writeReports(runOf([passed()]), {
      outDir: join(file, 'sub'),
      reporters: ['json'],
      stdout: sink().stream,
      color: false,
    }).catch((e: unknown) => e);
    expect(isFieldlabError(err)).toBe(true);
    expect((err as { code: string }).code).toBe('E_REPORT_WRITE');
  });
});

describe('exitCodeFor', () => {
  it('is 1 when a variant failed or errored, 0 otherwise (skips do not fail)', () => {
    expect(exitCodeFor(runOf([]))).toBe(0);
    expect(exitCodeFor(runOf([passed()]))).toBe(0);
    expect(exitCodeFor(runOf([passed(), skipped()]))).toBe(0);
    expect(exitCodeFor(runOf([passed(), failed()]))).toBe(1);
    expect(exitCodeFor(runOf([skipped(), errored()]))).toBe(1);
    expect(exitCodeFor(mixedRun())).toBe(1);
  });
});

describe('cleanText', () => {
  it('strips terminal escapes, shows control characters, repairs lone surrogates', () => {
    expect(cleanText('\u001b[1;31mred\u001b[0m \u001b]0;title\u0007ok')).toBe('red ok');
    expect(cleanText('a\u0000b\u0008c\u007fd')).toBe('a\\x00b\\x08c\\x7fd');
    expect(cleanText('tab\tand\r\nline\rmeter')).toBe('tab\tand\nline\nmeter');
    expect(cleanText('x\ud800y\ufffe 🚀')).toBe('x\ufffdy\ufffd 🚀');
    expect(lastLines('1\n\n2\n3\n', 2)).toEqual(['2', '3']);
    expect(lastLines(undefined, 3)).toEqual([]);
  });
});
