// Retries as a client sees them: a failed connection or a 429/502/503/504 is tried again before anything reaches
// the client; once the retries are spent, the upstream's own answer passes through unchanged.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { closedPort, eventually, startRecall, type RunningRecall } from '../../support/recall.js';

type APIError = InstanceType<typeof OpenAI.APIError>;

let mock: MockUpstream;
let recall: RunningRecall;
let sdk: OpenAI;
const CHAT = 'POST /v1/chat/completions';
/** Backoffs of a millisecond or two keep the tests short; Retry-After is honoured as the mock sends it. */
const FAST_RETRIES = { 'upstream.retries': 2, 'upstream.retry_base_ms': 1, 'upstream.retry_max_ms': 2 };

beforeAll(async () => {
  mock = await startMockUpstream();
  recall = await startRecall({ 'upstream.url': mock.baseURL, ...FAST_RETRIES });
  sdk = recall.client();
});
afterAll(async () => {
  await closeRecall(recall);
  await mock.close();
});
beforeEach(() => mock.reset());

function ask(content: string) {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] };
}

/**
 * After a client aborts, the test process's fetch pool may open a connection to Recall on which it never sends a
 * request; Node counts it as active and would hold close() until its headers timeout, so teardown cuts it.
 */
async function closeRecall(running: RunningRecall): Promise<void> {
  running.app.server.closeAllConnections();
  await running.close();
}

async function retries(reason: string): Promise<number> {
  return sample(await scrape(recall.url), 'recall_upstream_retries_total', { reason });
}

describe('retries', () => {
  it('an upstream 503 then a success: the client gets 200, the upstream saw two calls, the metric counts one retry', async () => {
    const before = await retries('status_503');
    mock.failNext('503');
    const completion = await sdk.chat.completions.create(ask('503 once'));
    expect(completion.object).toBe('chat.completion');
    expect(mock.stats().byRoute[CHAT]).toBe(2);
    expect(await retries('status_503')).toBe(before + 1);
  });

  it.each([['502', 'status_502'], ['504', 'status_504']] as const)('retries a %s the same way', async (fault, reason) => {
    const before = await retries(reason);
    mock.failNext(fault);
    expect((await sdk.chat.completions.create(ask(`${fault} once`))).object).toBe('chat.completion');
    expect(mock.stats().byRoute[CHAT]).toBe(2);
    expect(await retries(reason)).toBe(before + 1);
  });

  it("honours a 429's Retry-After before trying again", async () => {
    mock.failNext('429');
    const started = performance.now();
    const completion = await sdk.chat.completions.create(ask('429 once'));
    // A lower bound only: the mock's `retry-after: 1` is a second, the configured backoff at most 2 ms.
    expect(performance.now() - started).toBeGreaterThanOrEqual(950);
    expect(completion.object).toBe('chat.completion');
    expect(mock.stats().byRoute[CHAT]).toBe(2);
  });

  it('passes a 429 through at once, headers and all, when its Retry-After is longer than retry_after_max_ms', async () => {
    const error = (await sdk.chat.completions.create(ask('429 for an hour'), { headers: { 'x-mock-fault': '429', 'x-mock-retry-after': '3600' } }).catch((e: unknown) => e)) as APIError;
    expect(error).toBeInstanceOf(OpenAI.RateLimitError);
    expect(error.code).toBe('rate_limit_exceeded');
    expect(error.headers?.get('retry-after')).toBe('3600');
    expect(error.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(mock.stats().byRoute[CHAT]).toBe(1);
  });

  it("once the retries are spent, the upstream's own error passes through unchanged", async () => {
    const direct = await fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', headers: { 'x-mock-fault': '503' }, body: JSON.stringify(ask('x')) });
    const directBody = await direct.text();
    mock.reset();

    const response = await fetch(`${recall.baseURL}/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', 'x-mock-fault': '503', 'x-mock-retry-after': '0' }, body: JSON.stringify(ask('503 always')),
    });
    expect(response.status).toBe(503);
    expect(response.headers.get('retry-after')).toBe('0');
    expect(await response.text()).toBe(directBody);
    expect(mock.stats().byRoute[CHAT]).toBe(3);
    expect(response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('does not retry a 500, nor an upload streamed through (it cannot be sent twice); retries a GET', async () => {
    const error = (await sdk.chat.completions.create(ask('500'), { headers: { 'x-mock-fault': '500' } }).catch((e: unknown) => e)) as APIError;
    expect(error.status).toBe(500);
    expect(mock.stats().byRoute[CHAT]).toBe(1);

    const upload = await fetch(`${recall.baseURL}/files`, { method: 'POST', headers: { 'content-type': 'application/octet-stream', 'x-mock-fault': '503' }, body: 'file bytes' });
    expect(upload.status).toBe(503);
    await upload.text();
    expect(mock.stats().byRoute['POST /v1/files']).toBe(1);

    const models = await fetch(`${recall.baseURL}/models`, { headers: { 'x-mock-fault': '503' } });
    expect(models.status).toBe(503);
    await models.text();
    expect(mock.stats().byRoute['GET /v1/models']).toBe(3);
  });

  it('a client that leaves during a backoff stops the retrying', async () => {
    const controller = new AbortController();
    const leaving = sdk.chat.completions.create(ask('leaves while Recall waits'), { headers: { 'x-mock-fault': '503', 'x-mock-retry-after': '1' }, signal: controller.signal }).catch((e: unknown) => e);
    await eventually(() => mock.stats().byRoute[CHAT] === 1, 'the first attempt was answered');
    controller.abort();
    expect(await leaving).toBeInstanceOf(OpenAI.APIUserAbortError);
    await eventually(() => recall.logLines().some((line) => line.msg === 'request' && line.status === 499), 'Recall saw the client leave');
    // Long enough for the retry that would have followed the one-second Retry-After.
    await new Promise((resolve) => setTimeout(resolve, 1_500));
    expect(mock.stats().byRoute[CHAT]).toBe(1);
  });
});

describe('retries and the queue', () => {
  it('a call sleeping through its backoff holds no slot: another request goes upstream meanwhile', async () => {
    const capped = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.max_concurrent': 1, ...FAST_RETRIES, 'upstream.retry_after_max_ms': 60_000 });
    try {
      const controller = new AbortController();
      const sleeper = capped.client().chat.completions.create(ask('sleeps a minute'), { headers: { 'x-mock-fault': '503', 'x-mock-retry-after': '60' }, signal: controller.signal }).catch((e: unknown) => e);
      await eventually(() => mock.stats().byRoute[CHAT] === 1, 'the first attempt was answered');
      const other = await capped.client().chat.completions.create(ask('goes while the other sleeps'));
      expect(other.object).toBe('chat.completion');
      expect(mock.stats().byRoute[CHAT]).toBe(2);
      controller.abort();
      await sleeper;
    } finally {
      await closeRecall(capped);
    }
  });
});

describe('connect errors', () => {
  it('are retried, then answered 502 upstream_unreachable', async () => {
    const port = await closedPort();
    const orphan = await startRecall({ 'upstream.url': `http://127.0.0.1:${port}/v1`, ...FAST_RETRIES });
    try {
      const error = (await orphan.client().chat.completions.create(ask('nobody home')).catch((e: unknown) => e)) as APIError;
      expect(error.status).toBe(502);
      expect(error.code).toBe('upstream_unreachable');
      expect(error.message).toMatch(/ECONNREFUSED/);
      const text = await scrape(orphan.url);
      expect(sample(text, 'recall_upstream_retries_total', { reason: 'connect_error' })).toBe(2);
      expect(text).toMatch(/^# TYPE recall_upstream_retries_total counter$/m);
    } finally {
      await orphan.close();
    }
  });
});
