// The metrics of issue 6 as an operator scrapes them: time to first event of streams (hit and miss), Recall's own
// overhead, lookup durations, requests in flight, upstream errors by code, Redis up, and Node process metrics.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, scrape } from '../../support/metrics.js';
import { closedPort, eventually, startRecall, startRecallWithMock, type RecallWithMock } from '../../support/recall.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';

let setup: RecallWithMock;

beforeAll(async () => {
  setup = await startRecallWithMock({ 'upstream.retries': 0 });
});
afterAll(async () => {
  await setup.close();
});

async function streamText(request: { model: string; messages: { role: 'user'; content: string }[] }): Promise<string> {
  let text = '';
  for await (const chunk of await setup.sdk.chat.completions.create({ ...request, stream: true })) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

describe('metrics catalog', () => {
  it('observes time to first event for streamed misses and hits, and overhead and lookup durations', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `ttft ${Date.now()}` }] };
    const missText = await streamText(request);
    const hitText = await streamText(request);
    expect(hitText).toBe(missText);

    const route = '/v1/chat/completions';
    await eventually(async () => sample(await scrape(setup.recall.url), 'recall_stream_first_token_seconds_count', { route, cache: 'HIT' }) === 1, 'the hit was observed');
    const text = await scrape(setup.recall.url);
    expect(sample(text, 'recall_stream_first_token_seconds_count', { route, cache: 'MISS' })).toBe(1);
    expect(sample(text, 'recall_overhead_seconds_count', { route, cache: 'HIT' })).toBe(1);
    expect(sample(text, 'recall_overhead_seconds_count', { route, cache: 'MISS' })).toBe(1);
    expect(sample(text, 'recall_cache_lookup_duration_seconds_count', { tier: 'exact', result: 'miss' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'recall_cache_lookup_duration_seconds_count', { tier: 'exact', result: 'hit' })).toBeGreaterThanOrEqual(1);
    // A plain (not streamed) answer has no first-event time.
    expect(text).not.toMatch(/recall_stream_first_token_seconds_count\{[^}]*route="\/healthz"/);
  });

  it('counts requests in flight while an upstream call is slow', async () => {
    const slow = setup.recall.client({ defaultHeaders: { 'x-mock-latency-ms': '800' } }).chat.completions.create({
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: `in flight ${Date.now()}` }],
    });
    // The scrape itself is in flight too.
    await eventually(async () => sample(await scrape(setup.recall.url), 'recall_requests_in_flight') >= 2, 'the slow request is in flight');
    await slow;
    await eventually(async () => sample(await scrape(setup.recall.url), 'recall_requests_in_flight') === 1, 'only the scrape is in flight');
  });

  it('counts upstream errors by code, with every code present from the start', async () => {
    const before = await scrape(setup.recall.url);
    expect(before).toMatch(/^recall_upstream_errors_total\{code="status_503"\} 0$/m);
    expect(before).toMatch(/^recall_upstream_errors_total\{code="timeout"\} 0$/m);
    setup.mock.failNext('500');
    await expect(setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `error ${Date.now()}` }] })).rejects.toMatchObject({ status: 500 });
    setup.mock.failNext('429');
    await expect(setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `limited ${Date.now()}` }] })).rejects.toMatchObject({ status: 429 });
    const text = await scrape(setup.recall.url);
    expect(sample(text, 'recall_upstream_errors_total', { code: 'status_500' }) - sample(before, 'recall_upstream_errors_total', { code: 'status_500' })).toBe(1);
    expect(sample(text, 'recall_upstream_errors_total', { code: 'status_429' }) - sample(before, 'recall_upstream_errors_total', { code: 'status_429' })).toBe(1);
  });

  it('counts failures without an answer: a stalled upstream as timeout, a stream cut short as broken_response, a closed port as unreachable', async () => {
    const stalling = await startRecallWithMock({ 'upstream.retries': 0, 'upstream.headers_timeout_ms': 300 });
    try {
      stalling.mock.failNext('stall');
      await expect(stalling.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'stall' }] })).rejects.toMatchObject({ status: 504 });
      stalling.mock.failNext('broken-stream');
      const stream = await stalling.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'cut short' }], stream: true });
      await expect((async () => { for await (const _chunk of stream); })()).rejects.toBeDefined();
      await eventually(async () => sample(await scrape(stalling.recall.url), 'recall_upstream_errors_total', { code: 'broken_response' }) === 1, 'the broken stream was counted');
      expect(sample(await scrape(stalling.recall.url), 'recall_upstream_errors_total', { code: 'timeout' })).toBe(1);
    } finally {
      await stalling.close();
    }
    const nowhere = await startRecall({ 'upstream.url': `http://127.0.0.1:${await closedPort()}/v1`, 'upstream.retries': 0 });
    try {
      await expect(nowhere.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'anyone?' }] })).rejects.toMatchObject({ status: 502 });
      expect(sample(await scrape(nowhere.url), 'recall_upstream_errors_total', { code: 'unreachable' })).toBe(1);
    } finally {
      await nowhere.close();
    }
  });

  it('exports Node process metrics, without the misnamed `_total` gauges', async () => {
    const text = await scrape(setup.recall.url);
    expect(text).toMatch(/^# TYPE process_cpu_user_seconds_total counter$/m);
    expect(text).toMatch(/^# TYPE nodejs_heap_size_used_bytes gauge$/m);
    expect(text).toMatch(/^# TYPE nodejs_eventloop_lag_seconds gauge$/m);
    expect(text).not.toContain('nodejs_active_handles_total');
    expect(text).not.toContain('nodejs_active_requests_total');
    expect(text).not.toContain('nodejs_active_resources_total');
    // Without Redis there is no Redis to report on.
    expect(text).not.toContain('recall_redis_up');
  });
});

describe('recall_redis_up', () => {
  let redis: ThrowawayRedis;
  let withRedis: RecallWithMock;

  beforeAll(async () => {
    redis = await startThrowawayRedis();
    withRedis = await startRecallWithMock({ 'redis.url': redis.url });
  });
  afterAll(async () => {
    await withRedis.close();
    await redis.stop();
  });

  it('is 1 while Redis answers, 0 while it is down, and 1 again once it is back', { timeout: 30_000 }, async () => {
    await eventually(async () => sample(await scrape(withRedis.recall.url), 'recall_redis_up') === 1, 'Redis is reported up');
    await redis.crash();
    await eventually(async () => sample(await scrape(withRedis.recall.url), 'recall_redis_up') === 0, 'Redis is reported down');
    await redis.restart();
    await eventually(async () => sample(await scrape(withRedis.recall.url), 'recall_redis_up') === 1, 'Redis is reported up again');
  });
});
