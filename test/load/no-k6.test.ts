import { afterEach, describe, expect, it, vi } from 'vitest';
import { loadCommand, runTunnelLoad } from '../../harness/load/index.js';
import { readSummary, tempOut } from './helpers.js';

// A machine without k6: the capability check says so, whatever this machine has.
vi.mock('../../harness/capabilities.js', async (importOriginal) => ({
  ...(await importOriginal<typeof import('../../harness/capabilities.js')>()),
  checkCapability: (capability: string) => ({
    capability,
    ok: false,
    reason: 'k6 is not installed; scripts/setup.sh builds it with `go install`',
  }),
}));

describe('fieldlab load where k6 is missing', () => {
  let cleanup: (() => void) | undefined;
  afterEach(() => {
    cleanup?.();
    cleanup = undefined;
    process.exitCode = undefined;
  });

  it('falls back to the Node driver and says so', async () => {
    const out = tempOut();
    cleanup = out.cleanup;
    let text = '';
    const code = await runTunnelLoad({
      kind: 'tunnel-open-rate',
      vus: 1,
      duration: '500ms',
      out: out.dir,
      write: (t) => {
        text += t;
      },
    });
    expect(code, text).toBe(0);
    expect(text).toContain(
      'k6 not found: using the built-in Node driver (install k6 with scripts/install-k6.sh)',
    );
    expect(readSummary(out.dir).metrics.tunnels_opened?.count).toBeGreaterThan(0);
  });

  it('--driver k6 without k6 is E_NO_K6 with the install hint', async () => {
    await expect(
      runTunnelLoad({
        kind: 'tunnel',
        vus: 1,
        duration: '1s',
        out: '/nonexistent-never-created',
        driver: 'k6',
      }),
    ).rejects.toMatchObject({ code: 'E_NO_K6', hint: expect.stringContaining('scripts/install-k6.sh') });
  });

  it('loadCommand runs the test and sets process.exitCode from it', async () => {
    const out = tempOut();
    cleanup = out.cleanup;
    const write = vi.spyOn(process.stdout, 'write').mockImplementation(() => true);
    try {
      await loadCommand('tunnel-open-rate', { vus: '1', duration: '500ms', out: out.dir, driver: 'node' });
      expect(process.exitCode).toBe(0);
      expect(write).toHaveBeenCalledWith(expect.stringContaining('TOTAL RESULTS'));
    } finally {
      write.mockRestore();
    }
  });
});
