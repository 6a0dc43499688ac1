// The windows behind /recall/stats: hit rates, percentiles, savings and errors over 1 min, 15 min and since start.
import { describe, expect, it } from 'vitest';
import { RecentStats } from '../../../src/metrics/recent.js';

function clock(start = 1_700_000_000_000): { now: () => number; advance(ms: number): void } {
  let t = start;
  return { now: () => t, advance: (ms) => { t += ms; } };
}

describe('RecentStats', () => {
  it('reports hit rates per window and per tier; old figures leave the windows but stay in since_start', () => {
    const time = clock();
    const stats = new RecentStats(time.now);
    for (let i = 0; i < 3; i++) stats.request('MISS', 100);
    stats.lookup('exact', false);
    time.advance(5 * 60_000);
    for (let i = 0; i < 3; i++) stats.request('HIT', 1);
    stats.request('COALESCED', 50);
    stats.request('BYPASS', 80);
    stats.lookup('exact', true);

    const minute = stats.window('1m');
    expect(minute.requests).toEqual({ HIT: 3, COALESCED: 1, BYPASS: 1 });
    // BYPASS is not cacheable; COALESCED is cacheable but not served from a cache.
    expect(minute.hit_rate).toBeCloseTo(3 / 4);
    expect(minute.tiers.exact).toEqual({ lookups: 1, hits: 1, hit_rate: 1 });
    expect(stats.window('15m').hit_rate).toBeCloseTo(3 / 7);
    expect(stats.window('since_start').tiers.exact).toEqual({ lookups: 2, hits: 1, hit_rate: 0.5 });

    time.advance(20 * 60_000);
    expect(stats.window('15m').requests).toEqual({});
    expect(stats.window('15m').hit_rate).toBeNull();
    expect(stats.window('since_start').requests).toEqual({ MISS: 3, HIT: 3, COALESCED: 1, BYPASS: 1 });
    expect(stats.window('since_start').seconds).toBe(25 * 60);
  });

  it('gives p50, p95 and p99 per outcome within the bucket width (10 %)', () => {
    const stats = new RecentStats(clock().now);
    for (let ms = 1; ms <= 1000; ms++) stats.request('MISS', ms);
    for (let i = 0; i < 100; i++) stats.request('HIT', 0.4);
    const { latency } = stats.window('1m');
    expect(latency.MISS!.count).toBe(1000);
    for (const [p, exact] of [[latency.MISS!.p50_ms, 500], [latency.MISS!.p95_ms, 950], [latency.MISS!.p99_ms, 990]] as const) {
      expect(p).toBeGreaterThanOrEqual(exact);
      expect(p).toBeLessThanOrEqual(exact * 1.1);
    }
    expect(latency.HIT!.p99_ms).toBeGreaterThanOrEqual(0.4);
    expect(latency.HIT!.p99_ms).toBeLessThanOrEqual(0.44);
    expect(latency.all!.count).toBe(1100);
  });

  it('adds up tokens and money saved and upstream errors by code', () => {
    const stats = new RecentStats(clock().now);
    stats.saved(10, 20, 0.5);
    stats.saved(1, 2, 0.25);
    stats.upstreamError('status_500');
    stats.upstreamError('status_500');
    stats.upstreamError('timeout');
    const window = stats.window('1m');
    expect(window.saved).toEqual({ prompt_tokens: 11, completion_tokens: 22, cost_usd: 0.75 });
    expect(window.upstream_errors).toEqual({ total: 3, by_code: { status_500: 2, timeout: 1 } });
  });

  it('keeps a 15-minute timeline of 10-second points, oldest first, and never grows past it', () => {
    const time = clock(1_700_000_000_000);
    const stats = new RecentStats(time.now);
    // An hour of traffic, one request a second.
    for (let s = 0; s < 3600; s++) {
      stats.request(s % 2 === 0 ? 'HIT' : 'MISS', 5);
      time.advance(1000);
    }
    const { step_s, points } = stats.timeline();
    expect(step_s).toBe(10);
    expect(points).toHaveLength(90);
    expect(points.at(-1)!.t).toBe(Math.floor(time.now() / 10_000) * 10_000);
    expect(points[0]!.t).toBeLessThan(points.at(-1)!.t);
    expect(points.slice(0, -1).every((p) => p.requests === 10 && p.hit_rate === 0.5)).toBe(true);
    // The current slot has only just begun: 89 full slots are in the window.
    expect(stats.window('15m').requests).toEqual({ HIT: 445, MISS: 445 });
  });
});
