// Serving stale on upstream failure (RFC 5861 stale-if-error) through a real Recall, the mock upstream and the
// openai SDK: off by default, asked for per request or configured, for plain and streaming requests, for every request
// joined to the failing call, with the memory store and with Redis keeping the expired entry.
import OpenAI from 'openai';
import { setTimeout as sleep } from 'node:timers/promises';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayRedis, type ThrowawayRedis } from '../../support/redis.js';

let mock: MockUpstream;
let redis: ThrowawayRedis;
let counter = 0;

const freshChat = () => ({ model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `stale ${process.pid} ${++counter}: what is a cache?` }] });
const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;

/** A plain POST, for answers the SDK would turn into exceptions. */
async function post(recall: RunningRecall, body: unknown, headers: Record<string, string> = {}): Promise<Response> {
  return fetch(`${recall.baseURL}/chat/completions`, {
    method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-client-key-000', ...headers }, body: JSON.stringify(body),
  });
}

async function streamedText(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>): Promise<string> {
  let text = '';
  for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
  return text;
}

beforeAll(async () => {
  mock = await startMockUpstream();
  redis = await startThrowawayRedis();
});
afterAll(async () => {
  await mock?.close();
  await redis?.stop();
});
beforeEach(() => mock.reset());

describe.each([
  ['memory store', () => ({})],
  ['Redis store', () => ({ 'redis.url': redis.url, 'redis.key_prefix': `recall-stale-${process.pid}-${++counter}:`, 'redis.command_timeout_ms': 1_000 })],
])('with the %s', (_name, storeSettings) => {
  let recall: RunningRecall;
  let sdk: OpenAI;

  beforeAll(async () => {
    recall = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.retries': 0, ...storeSettings() });
    sdk = recall.client();
  });
  afterAll(() => recall.close());

  it('keeps an expired entry for stale-if-error, never serves it fresh, and serves it only within the grace asked for', async () => {
    const request = freshChat();
    const original = await sdk.chat.completions.create(request, { headers: { 'x-recall-ttl': '1' } });
    await sleep(2_100);

    // Expired: a plain repeat goes upstream (MISS), as it always did.
    mock.failNext('503');
    const plain = await post(recall, request);
    expect(plain.status).toBe(503);
    expect(plain.headers.get('x-recall-cache')).toBe('MISS');
    expect(((await plain.json()) as { error: { type: string } }).error.type).toBe('server_error');

    // Stale for over 1 s: outside a 1 s grace, so the upstream's 503 passes through unchanged.
    mock.failNext('503');
    const tooOld = await post(recall, request, { 'cache-control': 'stale-if-error=1' });
    expect(tooOld.status).toBe(503);
    expect(tooOld.headers.get('x-recall-cache')).toBe('MISS');

    // Within a 60 s grace: the expired entry answers, marked as stale, with its age.
    mock.failNext('503');
    const { data, response } = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'stale-if-error=60' } }).withResponse();
    expect(response.status).toBe(200);
    expect(response.headers.get('x-recall-cache')).toBe('STALE');
    expect(response.headers.get('cache-status')).toMatch(/^recall; fwd=stale; fwd-status=503; ttl=-[12]; detail=stale-if-error$/);
    expect(Number(response.headers.get('age'))).toBeGreaterThanOrEqual(2);
    expect(response.headers.get('warning')).toBeNull();
    expect(data).toEqual(original);
    expect(upstreamChats()).toBe(4);

    // When the upstream answers again, the fresh answer replaces the expired entry.
    const recovered = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'stale-if-error=60' } }).withResponse();
    expect(recovered.response.headers.get('x-recall-cache')).toBe('MISS');
    expect((await sdk.chat.completions.create(request).withResponse()).response.headers.get('x-recall-cache')).toBe('HIT');
  });
});

describe('stale-if-error', () => {
  let recall: RunningRecall;
  let sdk: OpenAI;

  beforeAll(async () => {
    recall = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.retries': 0 });
    sdk = recall.client();
  });
  afterAll(() => recall.close());

  /** A stored entry that `max-age=0` makes stale at once, so that no test has to wait for an expiry. */
  async function storedEntry(): Promise<{ request: ReturnType<typeof freshChat>; original: OpenAI.Chat.Completions.ChatCompletion }> {
    const request = freshChat();
    return { request, original: await sdk.chat.completions.create(request) };
  }

  it('is off unless asked for: an upstream 5xx reaches the client even with an entry at hand', async () => {
    const { request } = await storedEntry();
    mock.failNext('500');
    const answer = await post(recall, request, { 'cache-control': 'max-age=0' });
    expect(answer.status).toBe(500);
    expect(answer.headers.get('x-recall-cache')).toBe('MISS');
    expect(answer.headers.get('cache-status')).toBe('recall; fwd=stale');
  });

  it.each([['500'], ['502'], ['504']] as const)('answers a stale entry in place of an upstream %s', async (fault) => {
    const { request, original } = await storedEntry();
    mock.failNext(fault);
    const { data, response } = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'max-age=0, stale-if-error=60' } }).withResponse();
    expect(response.headers.get('x-recall-cache')).toBe('STALE');
    expect(response.headers.get('cache-status')).toMatch(new RegExp(`^recall; fwd=stale; fwd-status=${fault}; ttl=-?\\d+; detail=stale-if-error$`));
    expect(data).toEqual(original);
  });

  it('passes a 429 through: that is the upstream speaking to this client, not an error (RFC 5861 §4)', async () => {
    const { request } = await storedEntry();
    mock.failNext('429');
    const limited = await post(recall, request, { 'cache-control': 'max-age=0, stale-if-error=60' });
    expect(limited.status).toBe(429);
    expect(limited.headers.get('retry-after')).toBe('1');
    expect(limited.headers.get('x-recall-cache')).toBe('MISS');
    expect(((await limited.json()) as { error: { code: string } }).error.code).toBe('rate_limit_exceeded');
  });

  it('answers a stale entry when the upstream times out (Recall\'s 504), as SSE to a streaming request', async () => {
    const impatient = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.retries': 0, 'upstream.headers_timeout_ms': 500 });
    try {
      const client = impatient.client();
      const request = freshChat();
      const original = await client.chat.completions.create(request);
      mock.failNext('stall');
      const { data, response } = await client.chat.completions.create({ ...request, stream: true }, { headers: { 'cache-control': 'max-age=0, stale-if-error=60' } }).withResponse();
      expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
      expect(response.headers.get('x-recall-cache')).toBe('STALE');
      expect(response.headers.get('cache-status')).toMatch(/^recall; fwd=stale; fwd-status=504; ttl=-?\d+; detail=stale-if-error$/);
      expect(await streamedText(data)).toBe(original.choices[0]?.message.content);
    } finally {
      await impatient.close();
    }
  });

  it('answers a stale entry when the upstream is unreachable, with the configured default grace', async () => {
    const own = await startMockUpstream();
    const configured = await startRecall({ 'upstream.url': own.baseURL, 'upstream.retries': 0, 'cache.stale_if_error_seconds': 60 });
    try {
      const client = configured.client();
      const request = freshChat();
      const original = await client.chat.completions.create(request);
      await own.close();
      const { data, response } = await client.chat.completions.create(request, { headers: { 'cache-control': 'max-age=0' } }).withResponse();
      expect(response.headers.get('x-recall-cache')).toBe('STALE');
      expect(response.headers.get('cache-status')).toMatch(/^recall; fwd=stale; fwd-status=502; ttl=-?\d+; detail=stale-if-error$/);
      expect(data).toEqual(original);
      // Nothing stored for this one: Recall's own 502 reaches the client.
      const nothing = await post(configured, freshChat());
      expect(nothing.status).toBe(502);
      expect(((await nothing.json()) as { error: { code: string } }).error.code).toBe('upstream_unreachable');
      // A request may still turn it off for itself.
      const refused = await post(configured, request, { 'cache-control': 'max-age=0, stale-if-error=0' });
      expect(refused.status).toBe(502);
    } finally {
      await configured.close();
    }
  });

  it('gives every request joined to the failing call the stale entry, and the upstream error to a joiner that did not ask', async () => {
    const { request, original } = await storedEntry();
    mock.failNext('503');
    const slow = { 'x-mock-latency-ms': '1500', 'cache-control': 'max-age=0, stale-if-error=60' };
    const asking = Array.from({ length: 8 }, (_, i) => sdk.chat.completions.create(i % 2 === 0 ? request : { ...request, stream: true }, { headers: slow }).withResponse());
    await sleep(300);
    const notAsking = post(recall, request, { 'x-mock-latency-ms': '1500', 'cache-control': 'max-age=0' });
    const answers = await Promise.all(asking);
    expect(upstreamChats()).toBe(2);
    for (const [i, answer] of answers.entries()) {
      expect(answer.response.headers.get('x-recall-cache')).toBe('STALE');
      const text = i % 2 === 0 ? (answer.data as OpenAI.Chat.Completions.ChatCompletion).choices[0]?.message.content
        : await streamedText(answer.data as AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>);
      expect(text).toBe(original.choices[0]?.message.content);
    }
    const plain = await notAsking;
    expect(plain.status).toBe(503);
    expect(plain.headers.get('x-recall-cache')).toBe('COALESCED');
  });

  it('answers a plain request joined to a stream that ended without its final event from the stale entry', async () => {
    const { request, original } = await storedEntry();
    const headers = { 'cache-control': 'max-age=0, stale-if-error=60', 'x-mock-chunk-delay-ms': '150', 'x-mock-fault': 'no-done' };
    const leader = await sdk.chat.completions.create({ ...request, stream: true }, { headers }).withResponse();
    const joined = sdk.chat.completions.create(request, { headers }).withResponse();
    // The leader's stream was begun live, so it cannot be switched: it ends as the upstream ended it.
    expect(leader.response.headers.get('x-recall-cache')).toBe('MISS');
    const leaderText = streamedText(leader.data).catch((err: unknown) => err);
    const { data, response } = await joined;
    expect(response.headers.get('x-recall-cache')).toBe('STALE');
    expect(response.headers.get('cache-status')).toMatch(/^recall; fwd=stale; fwd-status=502; ttl=-?\d+; detail=stale-if-error$/);
    expect(data).toEqual(original);
    await leaderText;
    expect(upstreamChats()).toBe(2);
  });

  it('counts STALE answers in /metrics and /recall/stats', async () => {
    const { request } = await storedEntry();
    const before = (await (await fetch(`${recall.url}/recall/stats`)).json()) as { requests: { stale: number } };
    mock.failNext('503');
    await sdk.chat.completions.create(request, { headers: { 'cache-control': 'max-age=0, stale-if-error=60' } });
    const after = (await (await fetch(`${recall.url}/recall/stats`)).json()) as { requests: { stale: number } };
    expect(after.requests.stale).toBe(before.requests.stale + 1);
    const text = await (await fetch(`${recall.url}/metrics`)).text();
    expect(text).toMatch(/recall_requests_total\{route="\/v1\/chat\/completions",status="200",cache="STALE"\} [1-9]/);
  });
});
