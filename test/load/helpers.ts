import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { expect } from 'vitest';
import { SUMMARY_FILE } from '../../harness/load/index.js';

/** A temp output dir, removed by the returned cleanup. */
export function tempOut(): { dir: string; cleanup: () => void } {
  const dir = mkdtempSync(join(tmpdir(), 'fieldlab-load-'));
  return { dir, cleanup: () => rmSync(dir, { recursive: true, force: true }) };
}

type Summary = { metrics: Record<string, Record<string, number> & { thresholds?: Record<string, boolean> }> };

export function readSummary(dir: string): Summary {
  return JSON.parse(readFileSync(join(dir, SUMMARY_FILE), 'utf8')) as Summary;
}

/** A throughput run's summary: traffic flowed intact and every threshold passed (false = not failed). */
export function expectHealthyThroughput(s: Summary): void {
  const m = s.metrics;
  expect(m.tunnel_frames?.count).toBeGreaterThan(0);
  expect(m.tunnel_bytes?.count).toBeGreaterThanOrEqual((m.tunnel_frames?.count ?? 0) * 1024);
  expect(m.tunnel_bytes?.rate).toBeGreaterThan(0);
  expect(m.tunnel_data_errors?.value).toBe(0);
  expect(m.tunnel_data_errors?.fails).toBeGreaterThan(0); // k6: "fails" = zero samples = intact messages
  expect(m.tunnel_handshake_ms?.avg).toBeGreaterThan(0);
  expect(m.tunnel_frame_latency_ms?.['p(95)']).toBeGreaterThanOrEqual(0);
  expect(m.tunnel_frame_latency_ms?.thresholds).toEqual({ 'p(95)<500': false });
  expect(m.tunnel_data_errors?.thresholds).toEqual({ 'rate==0': false });
}
