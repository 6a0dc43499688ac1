// GET /recall/stats after traffic: hit rates per tier and window, percentiles per outcome, savings, upstream errors
// and the 15-minute timeline the dashboard draws.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type { WindowFigures, TimelinePoint } from '../../../src/metrics/recent.js';
import { eventually, startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

interface Stats {
  hit_rate: number | null;
  windows: Record<'1m' | '15m' | 'since_start', WindowFigures>;
  timeline: { step_s: number; points: TimelinePoint[] };
}

let setup: RecallWithMock;

beforeAll(async () => {
  setup = await startRecallWithMock({ 'upstream.retries': 0, 'metrics.prices': 'gpt-4o-mini=1000000/1000000' });
});
afterAll(async () => {
  await setup.close();
});

async function stats(): Promise<Stats> {
  return (await (await fetch(`${setup.recall.url}/recall/stats`)).json()) as Stats;
}

describe('/recall/stats', () => {
  it('reports hit rates, percentiles per outcome, savings and upstream errors over 1 min, 15 min and since start', async () => {
    const tag = Date.now();
    // Each prompt is answered twice from the cache: twice its tokens saved.
    const saved = { prompt_tokens: 0, completion_tokens: 0 };
    for (let i = 0; i < 3; i++) {
      const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `stats ${tag} ${i}` }] };
      const usage = (await setup.sdk.chat.completions.create(request)).usage!;
      saved.prompt_tokens += 2 * usage.prompt_tokens;
      saved.completion_tokens += 2 * usage.completion_tokens;
      await setup.sdk.chat.completions.create(request);
      await setup.sdk.chat.completions.create(request);
    }
    setup.mock.failNext('500');
    await expect(setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `stats error ${tag}` }] })).rejects.toMatchObject({ status: 500 });
    await eventually(async () => ((await stats()).windows['1m'].requests.MISS ?? 0) === 4, 'every request was counted');

    const body = await stats();
    for (const name of ['1m', '15m', 'since_start'] as const) {
      const window = body.windows[name];
      expect(window.requests, name).toEqual({ MISS: 4, HIT: 6 });
      expect(window.hit_rate, name).toBeCloseTo(6 / 10);
      expect(window.tiers.exact, name).toEqual({ lookups: 10, hits: 6, hit_rate: 0.6 });
      expect(window.latency.HIT!.count).toBe(6);
      expect(window.latency.MISS!.count).toBe(4);
      const { p50_ms, p95_ms, p99_ms } = window.latency.MISS!;
      expect(p50_ms).toBeGreaterThan(0);
      expect(p50_ms!).toBeLessThanOrEqual(p95_ms!);
      expect(p95_ms!).toBeLessThanOrEqual(p99_ms!);
      expect(window.saved).toEqual({ ...saved, cost_usd: saved.prompt_tokens + saved.completion_tokens });
      expect(window.upstream_errors).toEqual(expect.objectContaining({ total: 1, by_code: expect.objectContaining({ status_500: 1 }) }));
    }
    expect(body.windows['1m'].seconds).toBe(60);
    expect(body.windows['15m'].seconds).toBe(900);
    expect(body.hit_rate).toBeCloseTo(0.6);

    expect(body.timeline.step_s).toBe(10);
    expect(body.timeline.points).toHaveLength(90);
    const counted = body.timeline.points.reduce((n, p) => n + p.requests, 0);
    expect(counted).toBe(10);
  });
});
