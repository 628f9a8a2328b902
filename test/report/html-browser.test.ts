import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pathToFileURL } from 'node:url';
import { chromium } from 'playwright-core';
import { describe, expect, it } from 'vitest';
import { renderHtml } from '../../harness/report/html.js';
import type { VariantResult } from '../../harness/runner/result.js';
import { runVariant } from '../../harness/runner/run-variant.js';
import { loadScenario } from '../../harness/scenario/load.js';
import type { Variant } from '../../harness/scenario/model.js';
import { missing } from '../helpers/capability.js';
import { useTempStateDir } from '../helpers/state-dir.js';
import { errored, failed, runOf, skipped } from './fixtures.js';

/**
 * The HTML report as a person sees it: rendered by Debian's headless Chromium (playwright-core, never a
 * downloaded browser), screenshot taken, and the DOM checked. Real runs give it a variant with a known
 * delay (a 200 ms latency toxic on curl's path) and a load variant (tunnel streams); fixtures add failed,
 * skipped and errored cards. FIELDLAB_SCREENSHOT_DIR keeps the screenshot and the page.
 */
useTempStateDir('fl-html-');

const DELAY_MS = 200;

function pick(s: Awaited<ReturnType<typeof loadScenario>>, name: string): Variant {
  const v = s.scenario.variants.find((x) => x.name === name);
  if (!v) throw new Error(`no variant ${name}`);
  return v;
}

describe.skipIf(missing('cmd:chromium', 'cmd:curl', 'userns'))('HTML report in headless Chromium', () => {
  it('shows every variant, failed first and open, waterfall bars for a known delay, load charts', async () => {
    const https = await loadScenario('scenarios/https-endpoint.yaml');
    const delayed = await runVariant(
      https,
      {
        ...pick(https, 'fixed'),
        faults: [
          { target: 'api', type: 'latency', latency: DELAY_MS, jitter: 0, stream: 'downstream', toxicity: 1 },
        ],
      },
      { backend: 'loopback' },
    );
    expect(delayed.status, delayed.explanation.join('\n')).toBe('passed');
    const tunnels = await loadScenario('scenarios/tunnel-throughput.yaml');
    const fixed = pick(tunnels, 'fixed');
    const load = await runVariant(
      tunnels,
      { ...fixed, load: { ...fixed.load, vus: 2, duration: 2000 } },
      {
        backend: 'loopback',
      },
    );
    expect(load.load, load.explanation.join('\n')).toBeDefined();

    const results: VariantResult[] = [delayed, load, failed(), skipped(), errored()];
    const dir = process.env.FIELDLAB_SCREENSHOT_DIR ?? mkdtempSync(join(tmpdir(), 'fl-html-shot-'));
    const page = join(dir, 'report.html');
    writeFileSync(page, renderHtml(runOf(results)));
    // A fresh profile in the temp dir (launchPersistentContext is Playwright's --user-data-dir).
    const browser = await chromium.launchPersistentContext(join(dir, 'profile'), {
      executablePath: '/usr/bin/chromium',
      headless: true,
      viewport: { width: 1200, height: 900 },
      args: [
        '--headless',
        '--no-sandbox',
        '--disable-gpu',
        '--disable-background-networking',
        '--disable-component-update',
        '--disable-sync',
        '--no-first-run',
      ],
    });
    try {
      const tab = await browser.newPage();
      // Self-contained: the page asks for nothing beyond itself.
      const requests: string[] = [];
      tab.on('request', (r) => requests.push(r.url()));
      await tab.goto(pathToFileURL(page).href);
      await tab.screenshot({ path: join(dir, 'report.png'), fullPage: true });
      expect(requests).toEqual([pathToFileURL(page).href]);

      // Every variant has its card; the first ones are the failed, open.
      const cards = tab.locator('details.card');
      expect(await cards.count()).toBe(results.length);
      for (const r of results) {
        await expect(
          tab.locator('details.card summary b', { hasText: `${r.scenario}/${r.variant}` }).count(),
        ).resolves.toBe(1);
      }
      expect(await cards.first().getAttribute('class')).toContain('failed');
      expect(await cards.first().getAttribute('open')).not.toBeNull();

      // The delayed variant: its bars have a width on screen, and a phase took at least the delay.
      const delayedCard = tab.locator('details.card', { hasText: 'https-endpoint/fixed' });
      await delayedCard.locator(':scope > summary').click(); // passed cards start closed
      const bars = delayedCard.locator('.waterfall .bar');
      expect(await bars.count()).toBeGreaterThan(0);
      const widths = await bars.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().width));
      expect(widths.every((w) => w > 0)).toBe(true);
      const ms = await bars.evaluateAll((els) => els.map((e) => Number(e.getAttribute('data-ms') ?? 0)));
      expect(Math.max(...ms)).toBeGreaterThanOrEqual(DELAY_MS);

      // The load variant: a histogram with bars and a throughput line, drawn.
      const loadCard = tab.locator('details.card', { hasText: 'tunnel-throughput/fixed' });
      await loadCard.locator(':scope > summary').click();
      const hist = loadCard.locator('figure.chart.histogram svg rect.bar-h');
      expect(await hist.count()).toBeGreaterThan(0);
      const heights = await hist.evaluateAll((els) => els.map((e) => e.getBoundingClientRect().height));
      expect(heights.some((h) => h > 0)).toBe(true);
      const line = loadCard.locator('figure.chart.series svg polyline.line');
      expect(await line.count()).toBe(1);
      expect((await line.boundingBox())?.width ?? 0).toBeGreaterThan(0);
      await tab.screenshot({ path: join(dir, 'report-open.png'), fullPage: true });
    } finally {
      await browser.close();
      if (!process.env.FIELDLAB_SCREENSHOT_DIR) rmSync(dir, { recursive: true, force: true });
    }
  }, 120_000);
});
