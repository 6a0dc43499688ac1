// /recall/dashboard in a real headless Chromium (playwright-core driving Debian's chromium): the page loads with
// nothing from outside, its numbers change under traffic and agree with /recall/stats, and its charts draw. A
// screenshot is kept in test-artifacts/ (git-ignored).
import { mkdirSync } from 'node:fs';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WindowFigures } from '../../src/metrics/recent.js';
import { toolPath } from '../support/binaries.js';
import { startRecallWithMock, type RecallWithMock } from '../support/recall.js';

const CHROMIUM = toolPath('chromium', 'chromium');
const ARTIFACTS = new URL('../../test-artifacts/', import.meta.url);

/** The bit of the DOM the page predicates use (they run in the page; this project's types have no DOM lib). */
declare const document: { body: { dataset: Record<string, string | undefined> }; getElementById(id: string): { textContent: string | null } | null };

interface Stats {
  windows: Record<'1m' | '15m' | 'since_start', WindowFigures>;
}

describe.skipIf(CHROMIUM === undefined)('/recall/dashboard in Chromium', () => {
  let setup: RecallWithMock;
  let browser: Browser;
  let page: Page;
  const outside: string[] = [];

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'metrics.prices': 'gpt-4o-mini=1000/2000' });
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--no-sandbox', '--disable-gpu', '--disable-dev-shm-usage'] });
    page = await browser.newPage({ viewport: { width: 1280, height: 900 } });
    page.on('request', (request) => {
      if (!request.url().startsWith(setup.recall.url)) outside.push(request.url());
    });
  }, 60_000);
  afterAll(async () => {
    await browser?.close();
    await setup?.close();
  });

  async function text(id: string): Promise<string> {
    return (await page.textContent(`#${id}`)) ?? '';
  }

  it('shows live figures that change with traffic and agree with /recall/stats', { timeout: 60_000 }, async () => {
    const response = await page.goto(`${setup.recall.url}/recall/dashboard?refresh=300`);
    expect(response?.status()).toBe(200);
    await page.waitForFunction(() => Number(document.body.dataset.polls ?? 0) >= 1, undefined, { timeout: 15_000 });
    expect(await text('requests-all')).toBe('0');
    expect(await text('hit-rate-all')).toBe('–');

    // 2 prompts, each asked 4 times: 2 misses and 6 hits.
    for (let i = 0; i < 2; i++) {
      const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `dashboard ${Date.now()} ${i}` }] };
      for (let r = 0; r < 4; r++) await setup.sdk.chat.completions.create(request);
    }
    await page.waitForFunction(() => document.getElementById('requests-all')?.textContent === '8', undefined, { timeout: 15_000 });
    // One more poll after the last request, so that every figure on the page is from after the traffic.
    const polls = Number(await page.getAttribute('body', 'data-polls'));
    await page.waitForFunction((n) => Number(document.body.dataset.polls) > n + 1, polls, { timeout: 15_000 });

    const stats = (await (await fetch(`${setup.recall.url}/recall/stats`)).json()) as Stats;
    const all = stats.windows.since_start;
    const minute = stats.windows['1m'];
    expect(all.hit_rate).toBe(0.75);
    expect(await text('hit-rate-all')).toBe('75.0%');
    expect(await text('hit-rate-1m')).toBe(`${(minute.hit_rate! * 100).toFixed(1)}%`);
    expect(await text('requests-1m')).toBe('8');
    expect(await text('tier-exact')).toBe('75.0%');
    expect(await text('saved-usd')).toBe(`$${all.saved.cost_usd < 1 ? all.saved.cost_usd.toFixed(4) : all.saved.cost_usd.toFixed(2)}`);
    expect(await text('saved-tokens')).toBe(String(all.saved.prompt_tokens + all.saved.completion_tokens));
    expect(Number(await text('p99-1m'))).toBeCloseTo(minute.latency.all!.p99_ms!, 0);
    expect(await text('errors-15m')).toBe('0');

    // Charts: the hit-rate line, bars of requests by outcome, the latency lines.
    expect(await page.locator('#chart-hit-rate path').count()).toBe(1);
    expect(await page.locator('#chart-outcomes rect').count()).toBeGreaterThanOrEqual(2);
    expect(await page.locator('#chart-latency path').count()).toBe(3);
    expect(outside).toEqual([]);

    mkdirSync(ARTIFACTS, { recursive: true });
    await page.screenshot({ path: new URL('dashboard.png', ARTIFACTS).pathname, fullPage: true });
  });
});
