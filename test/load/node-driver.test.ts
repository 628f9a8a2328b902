import { afterEach, describe, expect, it } from 'vitest';
import { runTunnelLoad } from '../../harness/load/index.js';
import { expectHealthyThroughput, readSummary, tempOut } from './helpers.js';

// The built-in Node driver always runs: it is what `fieldlab load` falls back to without k6.
describe('fieldlab load with the Node driver', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => {
    cleanup?.();
    cleanup = undefined;
  });

  it('streams DATA through tunnels intact, passes the thresholds and exports k6-shaped JSON', async () => {
    const out = tempOut();
    cleanup = out.cleanup;
    let text = '';
    const code = await runTunnelLoad({
      kind: 'tunnel',
      vus: 2,
      duration: '3s',
      out: out.dir,
      driver: 'node',
      env: { SESSION: '1s' },
      write: (t) => {
        text += t;
      },
    });
    expect(code, text).toBe(0);
    expect(text).toContain('█ THRESHOLDS');
    expect(text).toMatch(/✓ 'rate==0'/);
    expect(text).toMatch(/tunnel_frames\.+: \d+ [\d.]+\/s/);
    // Sessions of 1s in 3s: several tunnels per VU, each closed afterwards.
    expect(text).toMatch(/tunnel service: ([3-9]|\d\d+) tunnels closed/);
    expectHealthyThroughput(readSummary(out.dir));
  });

  it('returns 99 when a threshold fails (FAIL_THRESHOLD adds p(95)<0)', async () => {
    const out = tempOut();
    cleanup = out.cleanup;
    let text = '';
    const code = await runTunnelLoad({
      kind: 'tunnel',
      vus: 1,
      duration: '1s',
      out: out.dir,
      driver: 'node',
      env: { FAIL_THRESHOLD: '1', PAYLOAD_SIZE: '64' },
      write: (t) => {
        text += t;
      },
    });
    expect(code, text).toBe(99);
    expect(text).toMatch(/✗ 'p\(95\)<0'/);
    const s = readSummary(out.dir);
    expect(s.metrics.tunnel_frame_latency_ms?.thresholds).toEqual({ 'p(95)<500': false, 'p(95)<0': true });
    expect(s.metrics.tunnel_frames?.count).toBeGreaterThan(0);
    expect(s.metrics.tunnel_bytes?.count).toBe((s.metrics.tunnel_frames?.count ?? 0) * 64);
  });

  it('measures the tunnel open rate', async () => {
    const out = tempOut();
    cleanup = out.cleanup;
    let text = '';
    const code = await runTunnelLoad({
      kind: 'tunnel-open-rate',
      vus: 2,
      duration: '1500ms',
      out: out.dir,
      driver: 'node',
      write: (t) => {
        text += t;
      },
    });
    expect(code, text).toBe(0);
    const m = readSummary(out.dir).metrics;
    expect(m.tunnels_opened?.count).toBeGreaterThan(1);
    expect(m.tunnels_opened?.rate).toBeGreaterThan(0);
    expect(m.tunnel_open_errors?.value).toBe(0);
    expect(m.tunnel_open_ms?.max).toBeGreaterThan(0);
    expect(text).toContain(`${m.tunnels_opened?.count} tunnels closed`);
  });

  it('rejects bad options before starting anything', async () => {
    const base = { kind: 'tunnel' as const, out: '/nonexistent-never-created', driver: 'node' as const };
    await expect(runTunnelLoad({ ...base, vus: 0, duration: '1s' })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    await expect(runTunnelLoad({ ...base, vus: 1, duration: 'soon' })).rejects.toMatchObject({
      code: 'E_BAD_OPTION',
    });
    await expect(
      runTunnelLoad({ ...base, vus: 1, duration: '1s', env: { PAYLOAD_SIZE: '8' } }),
    ).rejects.toMatchObject({ code: 'E_BAD_OPTION' });
  });
});
