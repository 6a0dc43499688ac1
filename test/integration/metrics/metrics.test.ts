// /metrics and /recall/stats as an operator reads them after some traffic.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, eventually, type RunningRecall } from '../../support/recall.js';

let mock: MockUpstream;
let recall: RunningRecall;

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, 'metrics.prices': 'gpt-4o-mini=1000000/2000000' });
});
afterAll(async () => {
  await recall.close();
  await mock.close();
});

function sample(text: string, name: string, labels: Record<string, string>): number {
  const line = text.split('\n').find((l) => l.startsWith(`${name}{`) && Object.entries(labels).every(([k, v]) => l.includes(`${k}="${v}"`)));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

describe('metrics', () => {
  it('count requests by outcome, lookups, and the tokens and money a hit saved', async () => {
    const request = { model: 'gpt-4o-mini-2024-07-18', messages: [{ role: 'user' as const, content: `metrics ${Date.now()}` }] };
    const first = await recall.client().chat.completions.create(request);
    await recall.client().chat.completions.create(request);
    await recall.client().chat.completions.create(request);
    await fetch(`${recall.baseURL}/models`);

    await eventually(async () => sample(await (await fetch(`${recall.url}/metrics`)).text(), 'recall_requests_total', { route: '/v1/*' }) === 1, 'the models request was counted');
    const response = await fetch(`${recall.url}/metrics`);
    expect(response.headers.get('content-type')).toMatch(/^text\/plain/);
    const text = await response.text();
    expect(sample(text, 'recall_requests_total', { route: '/v1/chat/completions', status: '200', cache: 'HIT' })).toBe(2);
    expect(sample(text, 'recall_requests_total', { route: '/v1/chat/completions', status: '200', cache: 'MISS' })).toBe(1);
    expect(sample(text, 'recall_requests_total', { route: '/v1/*', cache: 'BYPASS' })).toBe(1);
    expect(sample(text, 'recall_cache_lookups_total', { tier: 'exact', result: 'hit' })).toBe(2);
    expect(sample(text, 'recall_cache_lookups_total', { tier: 'exact', result: 'miss' })).toBe(1);
    const usage = first.usage!;
    expect(sample(text, 'recall_tokens_saved_total', { model: 'gpt-4o-mini', kind: 'prompt' })).toBe(2 * usage.prompt_tokens);
    expect(sample(text, 'recall_tokens_saved_total', { model: 'gpt-4o-mini', kind: 'completion' })).toBe(2 * usage.completion_tokens);
    expect(sample(text, 'recall_cost_saved_usd_total', { model: 'gpt-4o-mini' })).toBeCloseTo(2 * (usage.prompt_tokens + 2 * usage.completion_tokens));
    expect(sample(text, 'recall_cache_entries', { store: 'memory' })).toBeGreaterThanOrEqual(1);
    expect(text).toMatch(/^# TYPE recall_request_duration_seconds histogram$/m);
    // Tenants and keys never become label values.
    expect(text).not.toContain('sk-test-client-key');

    const stats = (await (await fetch(`${recall.url}/recall/stats`)).json()) as { hit_rate: number; requests: { hit: number; miss: number }; saved: { cost_usd: number } };
    expect(stats.requests).toMatchObject({ hit: 2, miss: 1 });
    expect(stats.hit_rate).toBeCloseTo(2 / 3);
    expect(stats.saved.cost_usd).toBeGreaterThan(0);
  });
});
