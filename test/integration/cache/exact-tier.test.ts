// The exact tier as a user sees it through the official SDK: hits, misses, both answer forms from one entry,
// tenant isolation, request controls, and what must never be stored.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MockUpstream } from '../../../loadtest/mock-upstream.js';
import { eventually, startRecall, startRecallWithMock, type RecallWithMock, type RunningRecall } from '../../support/recall.js';

let mock: MockUpstream;
let recall: RunningRecall;
let sdk: OpenAI;
let prompt = 0;

/** A request nobody has sent before in this run. */
function freshChat(extra: Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming> = {}) {
  prompt++;
  return { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `question number ${prompt} for the cache` }], ...extra };
}

const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;

async function collect(stream: AsyncIterable<OpenAI.Chat.Completions.ChatCompletionChunk>) {
  let text = '';
  const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
  for await (const chunk of stream) {
    chunks.push(chunk);
    text += chunk.choices[0]?.delta.content ?? '';
  }
  return { text, chunks };
}

let pair: RecallWithMock;

beforeAll(async () => {
  pair = await startRecallWithMock();
  ({ mock, recall, sdk } = pair);
});
afterAll(() => pair.close());
beforeEach(() => mock.reset());

describe('hits and misses', () => {
  it('a repeat is a HIT with the same answer and no upstream call', async () => {
    const request = freshChat();
    const first = await sdk.chat.completions.create(request).withResponse();
    const second = await sdk.chat.completions.create(request).withResponse();
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(first.response.headers.get('cache-status')).toBe('recall; fwd=miss; stored');
    expect(second.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(second.response.headers.get('cache-status')).toMatch(/^recall; hit; ttl=\d+$/);
    expect(Number(second.response.headers.get('age'))).toBeGreaterThanOrEqual(0);
    expect(second.data).toEqual(first.data);
    expect(upstreamChats()).toBe(1);
  });

  it('reordered keys and other whitespace are the same request', async () => {
    const content = `reordered ${Date.now()}`;
    const send = (raw: string) => fetch(`${recall.baseURL}/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-client-key-000' }, body: raw });
    const a = await send(`{"model":"gpt-4o-mini","messages":[{"role":"user","content":"${content}"}],"temperature":0}`);
    const b = await send(`{ "temperature": 0.0,\n  "messages": [ { "content": "${content}", "role": "user" } ],\n  "model": "gpt-4o-mini" }`);
    expect(a.headers.get('x-recall-cache')).toBe('MISS');
    expect(b.headers.get('x-recall-cache')).toBe('HIT');
    expect(await b.text()).toBe(await a.text());
    expect(upstreamChats()).toBe(1);
  });

  it('fields that cannot change the answer do not split the cache; ones that can do', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request);
    const withUser = await sdk.chat.completions.create({ ...request, user: 'someone', store: false, metadata: { run: 'x' } }).withResponse();
    expect(withUser.response.headers.get('x-recall-cache')).toBe('HIT');
    const withSeed = await sdk.chat.completions.create({ ...request, seed: 7 }).withResponse();
    expect(withSeed.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
  });
});

describe('tenants', () => {
  it('another API key never sees the entry; the same key does', async () => {
    const request = freshChat();
    await recall.client({ apiKey: 'sk-tenant-one' }).chat.completions.create(request);
    const other = await recall.client({ apiKey: 'sk-tenant-two' }).chat.completions.create(request).withResponse();
    const same = await recall.client({ apiKey: 'sk-tenant-one' }).chat.completions.create(request).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(same.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(upstreamChats()).toBe(2);
  });

  it('shares one partition across keys only when cache.scope is shared', async () => {
    const shared = await startRecall({ 'upstream.url': mock.baseURL, 'cache.scope': 'shared' });
    try {
      const request = freshChat();
      await shared.client({ apiKey: 'sk-a' }).chat.completions.create(request);
      const b = await shared.client({ apiKey: 'sk-b' }).chat.completions.create(request).withResponse();
      expect(b.response.headers.get('x-recall-cache')).toBe('HIT');
    } finally {
      await shared.close();
    }
  });
});

describe('one entry, both forms', () => {
  it('a streaming request after a plain one is a HIT streamed with the same text and the usage chunk', async () => {
    const request = freshChat();
    const plain = await sdk.chat.completions.create(request);
    const { data: stream, response } = await sdk.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }).withResponse();
    expect(response.headers.get('x-recall-cache')).toBe('HIT');
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    const { text, chunks } = await collect(stream);
    expect(text).toBe(plain.choices[0]?.message.content);
    expect(chunks.length).toBeGreaterThan(2);
    expect(chunks.at(-1)?.usage).toEqual(plain.usage);
    expect(chunks.every((c) => c.id === plain.id)).toBe(true);
    expect(upstreamChats()).toBe(1);
  });

  it('a plain request after a streamed one is a HIT with the assembled completion', async () => {
    const request = freshChat();
    const { text } = await collect(await sdk.chat.completions.create({ ...request, stream: true }));
    const { data: plain, response } = await sdk.chat.completions.create(request).withResponse();
    expect(response.headers.get('x-recall-cache')).toBe('HIT');
    expect(plain.object).toBe('chat.completion');
    expect(plain.choices[0]?.message.content).toBe(text);
    expect(plain.choices[0]?.finish_reason).toBe('stop');
    expect(upstreamChats()).toBe(1);
  });

  it('an entry filled by a stream without include_usage still has usage, and that client never saw a usage chunk', async () => {
    const request = freshChat();
    const { chunks } = await collect(await sdk.chat.completions.create({ ...request, stream: true }));
    expect(chunks.every((c) => c.choices.length > 0)).toBe(true);
    const upstreamAsked = JSON.parse(mock.requests().at(-1)!.body);
    expect(upstreamAsked.stream_options).toEqual({ include_usage: true });
    const plain = await sdk.chat.completions.create(request);
    expect(plain.usage?.total_tokens).toBeGreaterThan(0);
    const withUsage = await collect(await sdk.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } }));
    expect(withUsage.chunks.at(-1)?.usage).toEqual(plain.usage);
    expect(upstreamChats()).toBe(1);
  });

  it('tool calls round trip through the cache in both forms', async () => {
    const tools: OpenAI.Chat.ChatCompletionTool[] = [{ type: 'function', function: { name: 'lookup_order', parameters: { type: 'object', properties: { id: { type: 'string' } } } } }];
    const request = freshChat({ tools });
    const { chunks } = await collect(await sdk.chat.completions.create({ ...request, stream: true }));
    const streamedArgs = chunks.map((c) => c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments ?? '').join('');
    const plain = await sdk.chat.completions.create(request);
    const call = plain.choices[0]?.message.tool_calls?.[0];
    expect(plain.choices[0]?.finish_reason).toBe('tool_calls');
    expect(call?.type === 'function' && call.function.name).toBe('lookup_order');
    expect(call?.type === 'function' && call.function.arguments).toBe(streamedArgs);
    const again = await collect(await sdk.chat.completions.create({ ...request, stream: true }));
    expect(again.chunks.map((c) => c.choices[0]?.delta.tool_calls?.[0]?.function?.arguments ?? '').join('')).toBe(streamedArgs);
    expect(upstreamChats()).toBe(1);
  });

  it('legacy completions are cached too', async () => {
    const request = { model: 'gpt-3.5-turbo-instruct', prompt: `complete ${Date.now()}` };
    const first = await sdk.completions.create(request);
    const second = await sdk.completions.create(request).withResponse();
    expect(second.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(second.data).toEqual(first);
    let streamed = '';
    for await (const chunk of await sdk.completions.create({ ...request, stream: true })) streamed += chunk.choices[0]?.text ?? '';
    expect(streamed).toBe(first.choices[0]?.text);
    expect(mock.stats().byRoute['POST /v1/completions']).toBe(1);
  });
});

describe('what is never stored', () => {
  it('an upstream 429 is passed through and not stored', async () => {
    const request = freshChat();
    mock.failNext('429');
    // A Retry-After longer than upstream.retry_after_max_ms, so the 429 is not retried but passed through.
    const error = await sdk.chat.completions.create(request, { headers: { 'x-mock-retry-after': '3600' } }).catch((e: unknown) => e);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(429);
    const retry = await sdk.chat.completions.create(request).withResponse();
    expect(retry.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(retry.response.status).toBe(200);
    expect(upstreamChats()).toBe(2);
  });

  it('a stream the upstream breaks is not stored', async () => {
    const request = freshChat();
    const broken = await sdk.chat.completions.create({ ...request, stream: true }, { headers: { 'x-mock-fault': 'broken-stream' } });
    await collect(broken).catch(() => undefined);
    const retry = await sdk.chat.completions.create(request).withResponse();
    expect(retry.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('a stream without its terminal [DONE] is not stored', async () => {
    const request = freshChat();
    const cut = await collect(await sdk.chat.completions.create({ ...request, stream: true }, { headers: { 'x-mock-fault': 'no-done' } })).catch((e: unknown) => e);
    expect(cut).toBeInstanceOf(OpenAI.APIError);
    const retry = await sdk.chat.completions.create(request).withResponse();
    expect(retry.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('a stream the client abandons is not stored', async () => {
    const request = freshChat();
    const controller = new AbortController();
    const stream = await sdk.chat.completions.create({ ...request, stream: true }, { headers: { 'x-mock-chunk-delay-ms': '50' }, signal: controller.signal });
    await stream[Symbol.asyncIterator]().next();
    controller.abort();
    // Asked again only once the upstream call was dropped: asked sooner, the request would join it and keep it going.
    await eventually(() => mock.stats().aborted === 1, 'the upstream call was aborted');
    const retry = await sdk.chat.completions.create(request).withResponse();
    expect(retry.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
  });
});

describe('request controls', () => {
  it('Cache-Control: no-store neither reads nor stores (BYPASS)', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request);
    const bypass = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'no-store' } }).withResponse();
    expect(bypass.response.headers.get('x-recall-cache')).toBe('BYPASS');
    expect(bypass.response.headers.get('cache-status')).toBe('recall; fwd=bypass');
    const fresh = freshChat();
    await sdk.chat.completions.create(fresh, { headers: { 'cache-control': 'no-store' } });
    const after = await sdk.chat.completions.create(fresh).withResponse();
    expect(after.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('Cache-Control: no-cache skips the lookup but stores the fresh answer', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request);
    const refreshed = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'no-cache' } }).withResponse();
    expect(refreshed.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(refreshed.response.headers.get('cache-status')).toBe('recall; fwd=request; stored');
    const hit = await sdk.chat.completions.create(request).withResponse();
    expect(hit.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(upstreamChats()).toBe(2);
  });

  it('Cache-Control: max-age accepts only young enough entries', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request);
    await new Promise((r) => setTimeout(r, 20));
    const young = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'max-age=3600' } }).withResponse();
    expect(young.response.headers.get('x-recall-cache')).toBe('HIT');
    const tooOld = await sdk.chat.completions.create(request, { headers: { 'cache-control': 'max-age=0' } }).withResponse();
    expect(tooOld.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(tooOld.response.headers.get('cache-status')).toBe('recall; fwd=stale; stored');
  });

  it('X-Recall-TTL sets the lifetime of the stored answer', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request, { headers: { 'x-recall-ttl': '1' } });
    const within = await sdk.chat.completions.create(request).withResponse();
    expect(within.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(within.response.headers.get('cache-status')).toMatch(/ttl=[01]$/);
    await new Promise((r) => setTimeout(r, 1_100));
    const after = await sdk.chat.completions.create(request).withResponse();
    expect(after.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it('X-Recall-Namespace is a separate partition', async () => {
    const request = freshChat();
    await sdk.chat.completions.create(request);
    const other = await sdk.chat.completions.create(request, { headers: { 'x-recall-namespace': 'experiment-b' } }).withResponse();
    const otherAgain = await sdk.chat.completions.create(request, { headers: { 'x-recall-namespace': 'experiment-b' } }).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(otherAgain.response.headers.get('x-recall-cache')).toBe('HIT');
  });

  it('a malformed control header is a 400 that names it', async () => {
    const error = await sdk.chat.completions.create(freshChat(), { headers: { 'x-recall-ttl': 'forever' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.APIError>).param).toBe('X-Recall-TTL');
    expect(upstreamChats()).toBe(0);
  });

  it('routes left out of cache.routes are forwarded uncached', async () => {
    const chatOnly = await startRecall({ 'upstream.url': mock.baseURL, 'cache.routes': 'chat.completions' });
    try {
      const request = { model: 'gpt-3.5-turbo-instruct', prompt: `not cached ${Date.now()}` };
      await chatOnly.client().completions.create(request);
      const again = await chatOnly.client().completions.create(request).withResponse();
      expect(again.response.headers.get('x-recall-cache')).toBe('BYPASS');
      const chat = freshChat();
      await chatOnly.client().chat.completions.create(chat);
      expect((await chatOnly.client().chat.completions.create(chat).withResponse()).response.headers.get('x-recall-cache')).toBe('HIT');
    } finally {
      await chatOnly.close();
    }
  });

  it('requests with n > 1 are forwarded uncached when cache.cache_multiple_choices is false', async () => {
    const strict = await startRecall({ 'upstream.url': mock.baseURL, 'cache.cache_multiple_choices': false });
    try {
      const request = freshChat({ n: 2 });
      await strict.client().chat.completions.create(request);
      const again = await strict.client().chat.completions.create(request).withResponse();
      expect(again.response.headers.get('x-recall-cache')).toBe('BYPASS');
      expect(upstreamChats()).toBe(2);
    } finally {
      await strict.close();
    }
  });
});

describe('embeddings, cached per input', () => {
  const upstreamEmbeddings = () => mock.requests().filter((r) => r.path === '/v1/embeddings');

  it('a repeat is a HIT; a request with some inputs cached sends only the others and keeps the order', async () => {
    const tag = Date.now();
    const first = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: [`alpha ${tag}`, `beta ${tag}`], dimensions: 24 }).withResponse();
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    const repeat = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: [`alpha ${tag}`, `beta ${tag}`], dimensions: 24 }).withResponse();
    expect(repeat.response.headers.get('x-recall-cache')).toBe('HIT');
    expect(repeat.data.data.map((d) => d.embedding)).toEqual(first.data.data.map((d) => d.embedding));

    const mixed = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: [`gamma ${tag}`, `beta ${tag}`, `alpha ${tag}`], dimensions: 24, encoding_format: 'float' }).withResponse();
    expect(mixed.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(mixed.response.headers.get('cache-status')).toBe('recall; fwd=partial; stored; detail=cached-2-of-3');
    expect(mixed.data.data.map((d) => d.index)).toEqual([0, 1, 2]);
    expect(mixed.data.data[1]?.embedding).toEqual(first.data.data[1]?.embedding);
    expect(mixed.data.data[2]?.embedding).toEqual(first.data.data[0]?.embedding);
    const sent = upstreamEmbeddings().map((r) => JSON.parse(r.body).input);
    expect(sent).toEqual([[`alpha ${tag}`, `beta ${tag}`], [`gamma ${tag}`]]);
    expect(mixed.data.usage.prompt_tokens).toBeGreaterThan(0);
  });
});

describe('routes that are not cached', () => {
  it('models and other /v1 routes are forwarded with X-Recall-Cache: BYPASS', async () => {
    const models = await fetch(`${recall.baseURL}/models`);
    expect(models.headers.get('x-recall-cache')).toBe('BYPASS');
    expect(models.headers.get('cache-status')).toBe('recall; fwd=bypass');
  });
});
