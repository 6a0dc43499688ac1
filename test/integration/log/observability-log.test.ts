// The fields an operator filters request lines by (outcome, coalesced, tenant hash, upstream time, first event), and
// the slow-request warning with where the time went.
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eventually, startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

const KEY_A = 'sk-tenant-a-0000000000000001';
const KEY_B = 'sk-tenant-b-0000000000000002';

let setup: RecallWithMock;

beforeAll(async () => {
  setup = await startRecallWithMock({ 'log.slow_request_ms': 400 });
});
afterAll(async () => {
  await setup.close();
});

function requestLines(): Record<string, unknown>[] {
  return setup.recall.logLines().filter((l) => l.msg === 'request' || l.msg === 'slow request');
}

describe('request log fields', () => {
  it('carry the outcome, coalesced flag, a short tenant hash that differs per key and never the key itself', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `tenants ${Date.now()}` }] };
    const before = requestLines().length;
    // Two identical requests at once from tenant A: one goes upstream, the other joins it.
    const slowA = setup.recall.client({ apiKey: KEY_A, defaultHeaders: { 'x-mock-latency-ms': '150' } });
    await Promise.all([slowA.chat.completions.create(request), slowA.chat.completions.create(request)]);
    await setup.recall.client({ apiKey: KEY_B }).chat.completions.create(request);
    await eventually(() => requestLines().length === before + 3, 'three requests were logged');
    const [first, second, third] = requestLines().slice(before) as [Record<string, unknown>, Record<string, unknown>, Record<string, unknown>];
    const outcomes = [first.cache, second.cache].sort();
    expect(outcomes).toEqual(['COALESCED', 'MISS']);
    expect([first, second].find((l) => l.cache === 'COALESCED')).toMatchObject({ coalesced: true, upstream_ms: null });
    expect([first, second].find((l) => l.cache === 'MISS')).toMatchObject({ coalesced: false });
    expect(typeof [first, second].find((l) => l.cache === 'MISS')!.upstream_ms).toBe('number');
    expect(first.tenant).toMatch(/^[0-9a-f]{12}$/);
    expect(second.tenant).toBe(first.tenant);
    expect(third).toMatchObject({ cache: 'MISS', coalesced: false });
    expect(third.tenant).toMatch(/^[0-9a-f]{12}$/);
    expect(third.tenant).not.toBe(first.tenant);
    expect(setup.recall.logText()).not.toContain('tenant-a-0000');
    expect(first).not.toHaveProperty('similarity');
  });

  it('carry the time to the first event of a stream', async () => {
    const before = requestLines().length;
    const stream = await setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `first event ${Date.now()}` }], stream: true });
    for await (const _chunk of stream);
    await eventually(() => requestLines().length === before + 1, 'the stream was logged');
    const line = requestLines().at(-1)!;
    expect(typeof line.first_event_ms).toBe('number');
    expect(line.first_event_ms as number).toBeLessThanOrEqual(line.duration_ms as number);
  });

  it('log a request slower than log.slow_request_ms at warn, with queue, lookup, upstream, render and Recall times', async () => {
    const before = requestLines().length;
    await setup.recall.client({ defaultHeaders: { 'x-mock-latency-ms': '600' } }).chat.completions.create({
      model: 'gpt-4o-mini', messages: [{ role: 'user', content: `slow ${Date.now()}` }],
    });
    await eventually(() => requestLines().length === before + 1, 'the slow request was logged');
    const line = requestLines().at(-1)!;
    expect(line).toMatchObject({ msg: 'slow request', level: 40, cache: 'MISS', slow_request_ms: 400 });
    const breakdown = line.breakdown as { queue_ms: number; lookup_ms: { exact: number }; upstream_ms: number; render_ms: number; recall_ms: number };
    expect(breakdown.upstream_ms).toBeGreaterThanOrEqual(600);
    expect(typeof breakdown.queue_ms).toBe('number');
    expect(typeof breakdown.lookup_ms.exact).toBe('number');
    expect(breakdown.render_ms).toBe(0);
    const sum = breakdown.queue_ms + breakdown.lookup_ms.exact + breakdown.upstream_ms + breakdown.render_ms + breakdown.recall_ms;
    expect(sum).toBeCloseTo(line.duration_ms as number, 0);
  });
});
