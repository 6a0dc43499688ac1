// The official openai SDK pointed at Recall, in front of the mock upstream, as a user would use it.
import { request as httpRequest } from 'node:http';
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MockUpstream } from '../../../loadtest/mock-upstream.js';
import { eventually, startRecall, startRecallWithMock, type RecallWithMock, type RunningRecall } from '../../support/recall.js';

let mock: MockUpstream;
let recall: RunningRecall;
let sdk: OpenAI;

let pair: RecallWithMock;

beforeAll(async () => {
  pair = await startRecallWithMock();
  ({ mock, recall, sdk } = pair);
});
afterAll(() => pair.close());
beforeEach(() => mock.reset());

describe('chat completions through Recall', () => {
  it('answers a non-streaming request exactly as the upstream does', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'What is a proxy?' }] };
    const viaRecall = await sdk.chat.completions.create(request);
    const direct = await new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-test', maxRetries: 0 }).chat.completions.create(request);
    expect(viaRecall).toEqual(direct);
    expect(viaRecall.choices[0]?.message.content).toMatch(/\w+/);
    expect(mock.stats().byRoute['POST /v1/chat/completions']).toBe(2);
  });

  it('streams with include_usage: every chunk, the usage chunk, and the same text as the upstream', async () => {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Stream me a story' }] };
    const stream = await sdk.chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    const chunks: OpenAI.Chat.Completions.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);
    const text = chunks.map((c) => c.choices[0]?.delta.content ?? '').join('');
    const direct = await new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-test', maxRetries: 0 }).chat.completions.create({ ...request, stream: true, stream_options: { include_usage: true } });
    let directText = '';
    for await (const chunk of direct) directText += chunk.choices[0]?.delta.content ?? '';
    expect(text).toBe(directText);
    expect(text).toMatch(/\w+ \w+/);
    expect(chunks.length).toBeGreaterThan(3);
    expect(chunks.at(-1)?.choices).toEqual([]);
    expect(chunks.at(-1)?.usage?.total_tokens).toBeGreaterThan(0);
    expect(chunks.some((c) => c.choices[0]?.finish_reason === 'stop')).toBe(true);
  });

  it('passes tool_calls replies through', async () => {
    const completion = await sdk.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'Weather in Paris?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' } } } } }],
    });
    expect(completion.choices[0]?.finish_reason).toBe('tool_calls');
    const call = completion.choices[0]?.message.tool_calls?.[0];
    expect(call?.type === 'function' && call.function.name).toBe('get_weather');
  });

  it('delivers the first chunk while the upstream is still streaming (no buffering)', async () => {
    const stream = await sdk.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'slow stream please' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '60' } },
    );
    const iterator = stream[Symbol.asyncIterator]();
    const first = await iterator.next();
    expect(first.done).toBe(false);
    // The upstream has not finished its answer yet: the chunk came through on its own.
    expect(mock.stats().inFlight).toBe(1);
    let rest = 0;
    for (let next = await iterator.next(); !next.done; next = await iterator.next()) rest++;
    expect(rest).toBeGreaterThan(1);
  });

  it('aborts the upstream request when the client abandons a stream', async () => {
    const controller = new AbortController();
    const stream = await sdk.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'a long answer that I will not wait for' }], stream: true },
      { headers: { 'x-mock-chunk-delay-ms': '200' }, signal: controller.signal },
    );
    const iterator = stream[Symbol.asyncIterator]();
    await iterator.next();
    controller.abort();
    await eventually(() => mock.stats().aborted === 1, 'the mock saw its request aborted');
    expect(mock.stats().inFlight).toBe(0);
  });
});

describe('completions, embeddings and models through Recall', () => {
  it('answers legacy completions', async () => {
    const completion = await sdk.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi' });
    expect(completion.object).toBe('text_completion');
    expect(completion.choices[0]?.text).toMatch(/\w/);
  });

  it('answers embeddings in float and in base64 (the SDK default) with the same vector', async () => {
    // no-store: forwarded as sent (the cached path is tested with the exact tier).
    const noStore = { headers: { 'cache-control': 'no-store' } };
    const asFloat = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], encoding_format: 'float', dimensions: 32 }, noStore);
    const asBase64 = await sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['alpha', 'beta'], dimensions: 32 }, noStore);
    expect(asFloat.data).toHaveLength(2);
    expect(asFloat.data[0]?.embedding).toHaveLength(32);
    expect(asBase64.data[1]?.embedding.length).toBe(32);
    for (const [i, item] of asBase64.data.entries()) {
      const expected = asFloat.data[i]!.embedding;
      item.embedding.forEach((value, j) => expect(value).toBeCloseTo(expected[j]!, 6));
    }
    const seen = mock.requests().filter((r) => r.path === '/v1/embeddings').map((r) => JSON.parse(r.body).encoding_format);
    expect(seen).toEqual(['float', 'base64']);
  });

  it('lists and retrieves models', async () => {
    const models = await sdk.models.list();
    expect(models.data.map((m) => m.id)).toContain('gpt-4o-mini');
    const one = await sdk.models.retrieve('gpt-4o-mini');
    expect(one.id).toBe('gpt-4o-mini');
  });
});

describe('upstream errors pass through unchanged', () => {
  it('an upstream 429 is an APIError 429 with its body, retry-after and x-ratelimit headers', async () => {
    mock.failNext('429');
    // A Retry-After longer than upstream.retry_after_max_ms: Recall does not retry it (see test/integration/upstream).
    const error = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }, { headers: { 'x-mock-retry-after': '3600' } }).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    const apiError = error as InstanceType<typeof OpenAI.APIError>;
    expect(apiError.status).toBe(429);
    expect(apiError.code).toBe('rate_limit_exceeded');
    expect(apiError.headers?.get('retry-after')).toBe('3600');
    expect(apiError.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    expect(apiError.headers?.get('x-ratelimit-limit-requests')).toBe('60');
  });

  it('an upstream 500 reaches the client as the same 500', async () => {
    mock.failNext('500');
    const error = await sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] }).catch((e: unknown) => e);
    expect((error as InstanceType<typeof OpenAI.APIError>).status).toBe(500);
    expect((error as InstanceType<typeof OpenAI.APIError>).type).toBe('server_error');
  });

  it('a stream that breaks mid-way ends with an error the SDK raises, not a silent truncation', async () => {
    const stream = await sdk.chat.completions.create(
      { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'break please' }], stream: true },
      { headers: { 'x-mock-fault': 'broken-stream' } },
    );
    const error = await (async () => {
      for await (const _chunk of stream) { /* drain */ }
    })().catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect(String((error as Error).message)).toMatch(/upstream/i);
  });
});

describe('what crosses the proxy', () => {
  it("sends the client's key upstream and strips hop-by-hop headers", async () => {
    // node:http, because fetch refuses to send a Connection header.
    const status = await new Promise<number>((resolve, reject) => {
      const req = httpRequest(`${recall.baseURL}/chat/completions`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-client-own-key', connection: 'keep-alive, x-private-hop', 'x-private-hop': 'secret', 'keep-alive': 'timeout=5', 'x-recall-namespace': 'ns', 'openai-organization': 'org-7' },
      }, (res) => {
        res.resume();
        res.on('end', () => resolve(res.statusCode ?? 0));
      });
      req.on('error', reject);
      req.end(JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'headers' }] }));
    });
    expect(status).toBe(200);
    const seen = mock.requests().at(-1)!;
    expect(seen.headers.authorization).toBe('Bearer sk-client-own-key');
    expect(seen.headers['openai-organization']).toBe('org-7');
    expect(seen.headers['x-private-hop']).toBeUndefined();
    expect(seen.headers['x-recall-namespace']).toBeUndefined();
    expect(seen.headers['keep-alive']).toBeUndefined();
  });

  it('forwards other /v1 routes with method, path, query, body and content type unchanged', async () => {
    const form = new FormData();
    form.append('purpose', 'batch');
    form.append('file', new Blob(['{"a":1}\n']), 'batch.jsonl');
    const response = await fetch(`${recall.baseURL}/files?check=1`, { method: 'POST', body: form, headers: { authorization: 'Bearer sk-x' } });
    // The mock has no /v1/files: its own 404 must come back unchanged.
    expect(response.status).toBe(404);
    expect(((await response.json()) as { error: { message: string } }).error.message).toBe('Invalid URL (POST /v1/files)');
    const seen = mock.requests().at(-1)!;
    expect(seen.method).toBe('POST');
    expect(seen.path).toBe('/v1/files?check=1');
    expect(String(seen.headers['content-type'])).toMatch(/^multipart\/form-data; boundary=/);
    expect(seen.body).toContain('filename="batch.jsonl"');
    expect(seen.body).toContain('{"a":1}');
  });
});

describe('the configured upstream key', () => {
  it('is used when the client sends no key, and never replaces a key the client sent', async () => {
    const withKey = await startRecall({ 'upstream.url': mock.baseURL, 'upstream.api_key': 'sk-recall-configured' });
    try {
      await fetch(`${withKey.baseURL}/models`);
      expect(mock.requests().at(-1)!.headers.authorization).toBe('Bearer sk-recall-configured');
      await fetch(`${withKey.baseURL}/models`, { headers: { authorization: 'Bearer sk-client' } });
      expect(mock.requests().at(-1)!.headers.authorization).toBe('Bearer sk-client');
    } finally {
      await withKey.close();
    }
  });
});
