// The upstream queue as a client sees it: with upstream.max_concurrent reached, waiting requests go upstream by
// X-Recall-Priority, a full queue or a long wait is a 503 with Retry-After, and a stream holds its slot until done.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { eventually, startRecall, type RunningRecall } from '../../support/recall.js';

type APIError = InstanceType<typeof OpenAI.APIError>;

let mock: MockUpstream;
const running: RunningRecall[] = [];

beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  // After a client aborts, the test process's fetch pool may open a connection to Recall on which it never sends a
  // request; Node counts it as active and would hold close() until its headers timeout, so teardown cuts it.
  for (const recall of running) recall.app.server.closeAllConnections();
  await Promise.all(running.map((recall) => recall.close()));
  await mock.close();
});
beforeEach(() => mock.reset());

async function recallWith(settings: Record<string, unknown>): Promise<RunningRecall> {
  const recall = await startRecall({ 'upstream.url': mock.baseURL, ...settings });
  running.push(recall);
  return recall;
}

function ask(content: string) {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content }] };
}

async function queued(recall: RunningRecall): Promise<number> {
  const text = await scrape(recall.url);
  return ['high', 'normal', 'low'].reduce((sum, priority) => sum + sample(text, 'recall_upstream_queue_depth', { priority }), 0);
}

/** A request that holds the only slot (the mock never answers it) until `release()` abandons it. */
async function holdSlot(recall: RunningRecall): Promise<{ release(): void }> {
  const controller = new AbortController();
  const held = fetch(`${recall.baseURL}/chat/completions`, {
    method: 'POST', signal: controller.signal,
    headers: { 'content-type': 'application/json', 'x-mock-fault': 'stall' },
    body: JSON.stringify(ask(`holder ${Math.random()}`)),
  }).catch(() => undefined);
  await eventually(() => mock.stats().inFlight === 1, 'the holder reached the upstream');
  return { release: () => { controller.abort(); void held; } };
}

/** The prompts the mock received, in arrival order. */
function promptsSeen(): string[] {
  return mock.requests().map((r) => (JSON.parse(r.body) as { messages: { content: string }[] }).messages[0]?.content ?? '');
}

describe('upstream queue', () => {
  it('sends waiting requests high, then normal, then low; a client that abandons its stream frees the slot', async () => {
    const recall = await recallWith({ 'upstream.max_concurrent': 1 });
    const sdk = recall.client();
    const controller = new AbortController();
    const stream = await sdk.chat.completions.create({ ...ask('the long stream'), stream: true }, { headers: { 'x-mock-chunk-delay-ms': '200' }, signal: controller.signal });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);

    const answers: Promise<OpenAI.Chat.Completions.ChatCompletion>[] = [];
    for (const priority of ['low', 'normal', 'high']) {
      answers.push(sdk.chat.completions.create(ask(`priority ${priority}`), { headers: { 'x-recall-priority': priority } }));
      await eventually(async () => (await queued(recall)) === answers.length, `the ${priority} request is queued`);
    }
    expect(mock.stats().requests).toBe(1);

    controller.abort();
    const completions = await Promise.all(answers);
    expect(completions.map((c) => c.object)).toEqual(['chat.completion', 'chat.completion', 'chat.completion']);
    expect(promptsSeen()).toEqual(['the long stream', 'priority high', 'priority normal', 'priority low']);
    await eventually(() => mock.stats().aborted === 1, 'the abandoned stream was aborted upstream');
    const text = await scrape(recall.url);
    expect(await queued(recall)).toBe(0);
    for (const priority of ['high', 'low']) expect(sample(text, 'recall_upstream_queue_wait_seconds_count', { priority })).toBe(1);
    expect(sample(text, 'recall_upstream_queue_wait_seconds_count', { priority: 'normal' })).toBe(2);
    expect(sample(text, 'recall_upstream_queue_wait_seconds_sum', { priority: 'low' })).toBeGreaterThan(0);
  });

  it('answers 503 upstream_queue_full with Retry-After when queue_max requests already wait', async () => {
    const recall = await recallWith({ 'upstream.max_concurrent': 1, 'upstream.queue_max': 1 });
    const holder = await holdSlot(recall);
    const waiting = recall.client().chat.completions.create(ask('waits its turn'));
    await eventually(async () => (await queued(recall)) === 1, 'one request waits');

    const error = (await recall.client().chat.completions.create(ask('one too many')).catch((e: unknown) => e)) as APIError;
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(error.status).toBe(503);
    expect(error.code).toBe('upstream_queue_full');
    expect(error.type).toBe('api_error');
    expect(error.message).toMatch(/upstream\.queue_max/);
    expect(error.headers?.get('retry-after')).toBe('1');

    holder.release();
    expect((await waiting).object).toBe('chat.completion');
    expect(promptsSeen()).not.toContain('one too many');
    expect(sample(await scrape(recall.url), 'recall_upstream_queue_rejections_total', { reason: 'full' })).toBe(1);
  });

  it('answers 503 upstream_queue_timeout with Retry-After when the wait is too long', async () => {
    const recall = await recallWith({ 'upstream.max_concurrent': 1, 'upstream.queue_timeout_ms': 200 });
    const holder = await holdSlot(recall);
    try {
      const response = await fetch(`${recall.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify(ask('too slow a queue')) });
      const body = (await response.json()) as { error: Record<string, unknown> };
      expect(response.status).toBe(503);
      expect(response.headers.get('retry-after')).toBe('1');
      expect(Object.keys(body.error).sort()).toEqual(['code', 'message', 'param', 'type']);
      expect(body.error.code).toBe('upstream_queue_timeout');
      expect(body.error.message).toMatch(/upstream\.queue_timeout_ms/);
      expect(promptsSeen()).not.toContain('too slow a queue');
      expect(await queued(recall)).toBe(0);
    } finally {
      holder.release();
    }
  });

  it('a stream holds its slot until it ends; the next request goes upstream after it', async () => {
    const recall = await recallWith({ 'upstream.max_concurrent': 1 });
    const sdk = recall.client();
    const stream = await sdk.chat.completions.create({ ...ask('a stream that holds'), stream: true }, { headers: { 'x-mock-chunk-delay-ms': '100' } });
    const iterator = stream[Symbol.asyncIterator]();
    expect((await iterator.next()).done).toBe(false);
    const next = sdk.chat.completions.create(ask('after the stream'));
    await eventually(async () => (await queued(recall)) === 1, 'the second request waits');

    let chunks = 1;
    for (let step = await iterator.next(); !step.done; step = await iterator.next()) {
      chunks++;
      // While the stream still streams, the second request has not gone upstream.
      if (chunks === 3) expect(mock.stats().requests).toBe(1);
    }
    expect(chunks).toBeGreaterThan(3);
    expect((await next).object).toBe('chat.completion');
    expect(promptsSeen()).toEqual(['a stream that holds', 'after the stream']);
  });

  it('no failure keeps the slot: after errors, timeouts and broken streams the next request still goes upstream', async () => {
    const recall = await recallWith({
      'upstream.max_concurrent': 1, 'upstream.queue_timeout_ms': 3_000, 'upstream.headers_timeout_ms': 300,
      'upstream.retries': 1, 'upstream.retry_base_ms': 1, 'upstream.retry_max_ms': 2,
    });
    const sdk = recall.client();
    const statusOf = (promise: Promise<unknown>) => promise.then(() => 200, (e: unknown) => (e as APIError).status);
    expect(await statusOf(sdk.chat.completions.create(ask('a 500'), { headers: { 'x-mock-fault': '500' } }))).toBe(500);
    expect(await statusOf(sdk.chat.completions.create(ask('503 twice'), { headers: { 'x-mock-fault': '503' } }))).toBe(503);
    expect(await statusOf(sdk.chat.completions.create(ask('a cut body'), { headers: { 'x-mock-fault': 'broken-stream' } }))).toBe(502);
    expect(await statusOf(sdk.chat.completions.create(ask('no answer'), { headers: { 'x-mock-fault': 'stall' } }))).toBe(504);
    const broken = await sdk.chat.completions.create({ ...ask('a cut stream'), stream: true }, { headers: { 'x-mock-fault': 'broken-stream' } });
    await expect((async () => { for await (const _chunk of broken) { /* drain */ } })()).rejects.toBeInstanceOf(OpenAI.APIError);
    const piped = await fetch(`${recall.baseURL}/models`, { headers: { 'x-mock-fault': '500' } });
    expect(piped.status).toBe(500);
    await piped.text();

    expect((await sdk.chat.completions.create(ask('still served'))).object).toBe('chat.completion');
    expect(await queued(recall)).toBe(0);
  });

  it('a client that leaves while it waits is taken out of the queue and never sent upstream', async () => {
    const recall = await recallWith({ 'upstream.max_concurrent': 1 });
    const holder = await holdSlot(recall);
    const controller = new AbortController();
    const leaving = recall.client().chat.completions.create(ask('leaves the queue'), { signal: controller.signal }).catch((e: unknown) => e);
    await eventually(async () => (await queued(recall)) === 1, 'the request waits');
    controller.abort();
    expect(await leaving).toBeInstanceOf(OpenAI.APIUserAbortError);
    await eventually(async () => (await queued(recall)) === 0, 'the queue is empty');
    holder.release();
    expect((await recall.client().chat.completions.create(ask('the next one'))).object).toBe('chat.completion');
    expect(promptsSeen()).not.toContain('leaves the queue');
  });
});

describe('X-Recall-Priority', () => {
  let recall: RunningRecall;
  beforeAll(async () => {
    recall = await recallWith({});
  });

  it.each([
    ['POST', '/chat/completions', JSON.stringify(ask('bad priority'))],
    ['POST', '/embeddings', JSON.stringify({ model: 'text-embedding-3-small', input: 'bad priority' })],
    ['GET', '/models', undefined],
    ['POST', '/files', 'an upload'],
  ])('an invalid value on %s %s → 400 invalid_header naming it, and nothing goes upstream', async (method, path, body) => {
    const response = await fetch(`${recall.baseURL}${path}`, { method, body, headers: { 'content-type': 'application/json', 'x-recall-priority': 'urgent' } });
    const json = (await response.json()) as { error: { code: string; param: string; message: string } };
    expect(response.status).toBe(400);
    expect(json.error.code).toBe('invalid_header');
    expect(json.error.param).toBe('X-Recall-Priority');
    expect(json.error.message).toMatch(/high, normal, low/);
    expect(mock.stats().requests).toBe(0);
  });

  it('is checked on a cache hit too, and accepted in any case', async () => {
    const sdk = recall.client();
    await sdk.chat.completions.create(ask('cached, then asked with a priority'));
    const error = (await sdk.chat.completions.create(ask('cached, then asked with a priority'), { headers: { 'x-recall-priority': 'top' } }).catch((e: unknown) => e)) as APIError;
    expect(error.status).toBe(400);
    const hit = await sdk.chat.completions.create(ask('cached, then asked with a priority'), { headers: { 'x-recall-priority': 'HIGH' } }).withResponse();
    expect(hit.response.headers.get('x-recall-cache')).toBe('HIT');
  });
});
