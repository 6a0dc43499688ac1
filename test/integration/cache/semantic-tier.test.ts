// The semantic tier as a user sees it through the official SDK: near-repeats of the last user message are answered
// from the cache (SEMANTIC), never across partitions, never past the guards, never from an entry that is gone.
import OpenAI from 'openai';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import type { MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { eventually, startRecallWithMock, type RecallWithMock, type RunningRecall } from '../../support/recall.js';

let pair: RecallWithMock;
let mock: MockUpstream;
let recall: RunningRecall;
let sdk: OpenAI;
let run = 0;

const upstreamChats = () => mock.stats().byRoute['POST /v1/chat/completions'] ?? 0;

/**
 * A question nobody asked before in this run (its number sets it apart: the numbers guard never lets two of them
 * match), and a surface variant of it (case, punctuation, spacing).
 */
function question(): { original: string; variant: string } {
  run++;
  return {
    original: `How do I keep my sourdough starter alive during a trip of ${run} days?`,
    variant: `how do i keep my sourdough  starter alive during a trip of ${run} days`,
  };
}

function chat(content: string, extra: Partial<OpenAI.Chat.ChatCompletionCreateParamsNonStreaming> = {}): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming {
  return { model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra };
}

beforeAll(async () => {
  pair = await startRecallWithMock({ 'admin.token': 'admin-secret' });
  ({ mock, recall, sdk } = pair);
});
afterAll(() => pair.close());
beforeEach(() => mock.reset());

describe('near-repeats', () => {
  it('a surface variant is a SEMANTIC hit with the stored answer, its similarity and no upstream call', async () => {
    const { original, variant } = question();
    const first = await sdk.chat.completions.create(chat(original)).withResponse();
    const second = await sdk.chat.completions.create(chat(variant)).withResponse();
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(second.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    const similarity = Number(second.response.headers.get('x-recall-similarity'));
    expect(similarity).toBeGreaterThan(0.9);
    expect(similarity).toBeLessThanOrEqual(1);
    expect(second.response.headers.get('cache-status')).toMatch(/^recall; hit; ttl=\d+; detail="semantic similarity=[01]\.\d{4}"$/);
    expect(second.response.headers.get('age')).not.toBeNull();
    expect(second.data).toEqual(first.data);
    expect(upstreamChats()).toBe(1);
  });

  it('a streaming near-repeat gets the stored answer as server-sent events', async () => {
    const { original, variant } = question();
    const first = await sdk.chat.completions.create(chat(original));
    const { data: stream, response } = await sdk.chat.completions.create({ ...chat(variant), stream: true }).withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    expect(response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(response.headers.get('content-type')).toMatch(/^text\/event-stream/);
    expect(text).toBe(first.choices[0]?.message.content);
    expect(upstreamChats()).toBe(1);
  });

  it('an entry stored from a stream serves a plain near-repeat', async () => {
    const { original, variant } = question();
    const stream = await sdk.chat.completions.create({ ...chat(original), stream: true });
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.delta.content ?? '';
    const second = await sdk.chat.completions.create(chat(variant)).withResponse();
    expect(second.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(second.data.choices[0]?.message.content).toBe(text);
  });

  it('counts hits and similarities and reports the index size', async () => {
    const before = await scrape(recall.url);
    const { original, variant } = question();
    await sdk.chat.completions.create(chat(original));
    await sdk.chat.completions.create(chat(variant));
    const after = await scrape(recall.url);
    expect(sample(after, 'recall_semantic_lookups_total', { result: 'hit' }) - sample(before, 'recall_semantic_lookups_total', { result: 'hit' })).toBe(1);
    expect(sample(after, 'recall_semantic_similarity_count') - sample(before, 'recall_semantic_similarity_count')).toBe(1);
    expect(sample(after, 'recall_semantic_vectors')).toBeGreaterThan(0);
    expect(sample(after, 'recall_semantic_index_bytes')).toBeGreaterThan(0);
    expect(sample(after, 'recall_requests_total', { cache: 'SEMANTIC' })).toBeGreaterThan(0);
    const stats = (await (await fetch(`${recall.url}/recall/stats`)).json()) as { semantic: { vectors: number; index_bytes: number; bytes_per_vector: number; lookups: Record<string, number> } };
    expect(stats.semantic.vectors).toBe(sample(after, 'recall_semantic_vectors'));
    expect(stats.semantic.bytes_per_vector).toBe(Math.round(stats.semantic.index_bytes / stats.semantic.vectors));
    // 512 floats of 4 bytes, plus metadata: an estimate, but never less than the floats.
    expect(stats.semantic.bytes_per_vector).toBeGreaterThan(2048);
    expect(stats.semantic.lookups.hit).toBe(sample(after, 'recall_semantic_lookups_total', { result: 'hit' }));
  });
});

describe('partitions: everything but the last user message must match exactly', () => {
  const variations: [string, (content: string) => OpenAI.Chat.ChatCompletionCreateParamsNonStreaming][] = [
    ['model', (c) => chat(c, { model: 'gpt-4o' })],
    ['temperature', (c) => chat(c, { temperature: 0.3 })],
    ['system prompt', (c) => ({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'Answer in French.' }, { role: 'user', content: c }] })],
    ['earlier turn', (c) => ({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Hi' }, { role: 'assistant', content: 'Hello!' }, { role: 'user', content: c }] })],
    ['tool list', (c) => chat(c, { tools: [{ type: 'function', function: { name: 'lookup_weather', parameters: { type: 'object', properties: {} } } }] })],
    ['response format', (c) => chat(c, { response_format: { type: 'json_object' } })],
  ];
  for (const [what, variantOf] of variations) {
    it(`a different ${what} never hits`, async () => {
      const { original, variant } = question();
      await sdk.chat.completions.create(chat(original));
      const second = await sdk.chat.completions.create(variantOf(variant)).withResponse();
      expect(second.response.headers.get('x-recall-cache')).toBe('MISS');
      expect(upstreamChats()).toBe(2);
    });
  }

  it('another tenant never hits; the same tenant does', async () => {
    const { original, variant } = question();
    await recall.client({ apiKey: 'sk-semantic-one' }).chat.completions.create(chat(original));
    const other = await recall.client({ apiKey: 'sk-semantic-two' }).chat.completions.create(chat(variant)).withResponse();
    const same = await recall.client({ apiKey: 'sk-semantic-one' }).chat.completions.create(chat(variant)).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(same.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
  });

  it('a byte-identical near-repeat is answered again, and its reused probe stays in its own tenant', async () => {
    const { original, variant } = question();
    const one = recall.client({ apiKey: 'sk-semantic-one' });
    await one.chat.completions.create(chat(original));
    // The body parser hands repeats of the same bytes one frozen object; from the second, its probe is reused.
    for (let i = 0; i < 3; i++) {
      const again = await one.chat.completions.create(chat(variant)).withResponse();
      expect(again.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    }
    const other = await recall.client({ apiKey: 'sk-semantic-two' }).chat.completions.create(chat(variant)).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
  });

  it('another namespace never hits', async () => {
    const { original, variant } = question();
    await sdk.chat.completions.create(chat(original));
    const other = await recall.client({ defaultHeaders: { 'x-recall-namespace': 'semantic-elsewhere' } }).chat.completions.create(chat(variant)).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
  });
});

describe('guards', () => {
  it('"What is 2+2?" never hits "What is 2+3?", even at a low threshold', async () => {
    const low = recall.client({ defaultHeaders: { 'x-recall-semantic': '0.5' } });
    await low.chat.completions.create(chat('What is 2+2?'));
    const other = await low.chat.completions.create(chat('What is 2+3?')).withResponse();
    expect(other.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
    expect(sample(await scrape(recall.url), 'recall_semantic_guard_rejections_total', { guard: 'numbers' })).toBeGreaterThan(0);
  });

  it('a changed name, file or negation never hits, even at a low threshold', async () => {
    const low = recall.client({ defaultHeaders: { 'x-recall-semantic': '0.5' } });
    const pairs = [
      ['Write a short poem about Lisbon for my mother.', 'Write a short poem about Madrid for my mother.'],
      ['Explain what the file settings.yaml does in this project.', 'Explain what the file settings.json does in this project.'],
      ['Should I use tabs for indentation in Go code?', 'Should I not use tabs for indentation in Go code?'],
    ] as const;
    for (const [stored, asked] of pairs) {
      await low.chat.completions.create(chat(stored));
      const other = await low.chat.completions.create(chat(asked)).withResponse();
      expect(other.response.headers.get('x-recall-cache'), asked).toBe('MISS');
    }
  });
});

describe('X-Recall-Semantic', () => {
  it('off skips the semantic tier; the answer is still indexed for later near-repeats', async () => {
    const { original, variant } = question();
    const off = recall.client({ defaultHeaders: { 'x-recall-semantic': 'off' } });
    await off.chat.completions.create(chat(original));
    const skipped = await off.chat.completions.create(chat(variant)).withResponse();
    expect(skipped.response.headers.get('x-recall-cache')).toBe('MISS');
    const variant2 = `${variant}!`;
    const served = await sdk.chat.completions.create(chat(variant2)).withResponse();
    expect(served.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
  });

  it('a threshold given per request replaces the configured one', async () => {
    const { original } = question();
    await sdk.chat.completions.create(chat(original));
    const reworded = `Please tell me: ${original}`;
    const strict = await recall.client({ defaultHeaders: { 'x-recall-semantic': '1' } }).chat.completions.create(chat(reworded)).withResponse();
    expect(strict.response.headers.get('x-recall-cache')).toBe('MISS');
    const loose = await recall.client({ defaultHeaders: { 'x-recall-semantic': '0.6' } }).chat.completions.create(chat(`Tell me, ${original}`)).withResponse();
    expect(loose.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(Number(loose.response.headers.get('x-recall-similarity'))).toBeLessThan(1);
  });

  it('a bad value is a 400 naming the header, before anything goes upstream', async () => {
    const bad = recall.client({ defaultHeaders: { 'x-recall-semantic': 'sometimes' } });
    const error = await bad.chat.completions.create(chat('anything at all')).catch((e: unknown) => e);
    expect(error).toBeInstanceOf(OpenAI.BadRequestError);
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).code).toBe('invalid_header');
    expect((error as InstanceType<typeof OpenAI.BadRequestError>).param).toBe('X-Recall-Semantic');
    expect(mock.stats().requests).toBe(0);
  });
});

describe('entries that are gone', () => {
  const vectors = async (on: RunningRecall = recall) => sample(await scrape(on.url), 'recall_semantic_vectors');
  const purge = async (body: unknown) => {
    const answer = await fetch(`${recall.url}/recall/admin/purge`, {
      method: 'POST', headers: { authorization: 'Bearer admin-secret', 'content-type': 'application/json' }, body: JSON.stringify(body),
    });
    return answer.json();
  };

  it('an expired entry is never served', async () => {
    const { original, variant } = question();
    await recall.client({ defaultHeaders: { 'x-recall-ttl': '1' } }).chat.completions.create(chat(original));
    await new Promise((resolve) => setTimeout(resolve, 1_100));
    const later = await sdk.chat.completions.create(chat(variant)).withResponse();
    expect(later.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(upstreamChats()).toBe(2);
  });

  it('a purged entry is never served, and its vector leaves the index with it', async () => {
    const { original, variant } = question();
    const first = await sdk.chat.completions.create(chat(original)).withResponse();
    const before = await vectors();
    expect(await purge({ key: first.response.headers.get('x-recall-key') })).toEqual({ purged: 1 });
    expect(await vectors()).toBe(before - 1);
    const later = await sdk.chat.completions.create(chat(variant)).withResponse();
    expect(later.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  it("a namespace purge takes that namespace's vectors and leaves the others", async () => {
    const inNamespace = recall.client({ defaultHeaders: { 'x-recall-namespace': 'semantic-purged' } });
    const purged = question();
    const kept = question();
    await inNamespace.chat.completions.create(chat(purged.original));
    await sdk.chat.completions.create(chat(kept.original));
    const before = await vectors();
    expect(await purge({ namespace: 'semantic-purged' })).toEqual({ purged: 1 });
    expect(await vectors()).toBe(before - 1);
    const gone = await inNamespace.chat.completions.create(chat(purged.variant)).withResponse();
    const still = await sdk.chat.completions.create(chat(kept.variant)).withResponse();
    expect(gone.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(still.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
  });

  it('a purge of all empties the index', async () => {
    const { original, variant } = question();
    await sdk.chat.completions.create(chat(original));
    expect(await vectors()).toBeGreaterThan(0);
    expect(((await purge({ all: true })) as { purged: number }).purged).toBeGreaterThan(0);
    expect(await vectors()).toBe(0);
    const later = await sdk.chat.completions.create(chat(variant)).withResponse();
    expect(later.response.headers.get('x-recall-cache')).toBe('MISS');
  });

  describe('in step with the memory store', () => {
    let small: RecallWithMock;
    beforeAll(async () => {
      small = await startRecallWithMock({ 'cache.memory.max_entries': 2, 'semantic.sweep_interval_ms': 100 });
    });
    afterAll(() => small.close());

    it('an entry evicted by the LRU takes its vector: the near-repeat is a MISS and the index shrinks', async () => {
      const oldest = question();
      await small.sdk.chat.completions.create(chat(oldest.original));
      await small.sdk.chat.completions.create(chat(question().original));
      expect(await vectors(small.recall)).toBe(2);
      // A third entry that has no vector of its own (a prompt of token IDs) evicts the least recently used one, and
      // that entry's vector goes with it before any lookup.
      await small.sdk.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: [run, 7, 7] as unknown as string });
      expect(await vectors(small.recall)).toBe(1);
      const lookupsBefore = sample(await scrape(small.recall.url), 'recall_semantic_lookups_total', { result: 'expired' });
      const repeat = await small.sdk.chat.completions.create(chat(oldest.variant)).withResponse();
      expect(repeat.response.headers.get('x-recall-cache')).toBe('MISS');
      // Not found and dropped by the lookup: it was gone already.
      expect(sample(await scrape(small.recall.url), 'recall_semantic_lookups_total', { result: 'expired' })).toBe(lookupsBefore);
    });

    it('the vector of an expired entry is swept out without anyone asking for it', async () => {
      await small.sdk.chat.completions.create(chat(question().original), { headers: { 'x-recall-ttl': '1' } });
      const before = await vectors(small.recall);
      await eventually(async () => (await vectors(small.recall)) === before - 1, 'the expired vector was swept');
    });
  });
});

describe('completions', () => {
  const complete = (prompt: string | string[], extra: Partial<OpenAI.Completions.CompletionCreateParamsNonStreaming> = {}) =>
    sdk.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt, ...extra }).withResponse();
  const upstreamCompletions = () => mock.stats().byRoute['POST /v1/completions'] ?? 0;

  it('a near-repeat of the prompt is a SEMANTIC hit with the stored answer', async () => {
    const { original, variant } = question();
    const first = await complete(original);
    const second = await complete(variant);
    expect(first.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(second.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(Number(second.response.headers.get('x-recall-similarity'))).toBeGreaterThan(0.9);
    expect(second.data).toEqual(first.data);
    expect(upstreamCompletions()).toBe(1);
  });

  it('a streaming near-repeat gets the stored text as server-sent events', async () => {
    const { original, variant } = question();
    const first = await complete(original);
    const { data: stream, response } = await sdk.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: variant, stream: true }).withResponse();
    let text = '';
    for await (const chunk of stream) text += chunk.choices[0]?.text ?? '';
    expect(response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(text).toBe(first.data.choices[0]?.text);
  });

  it('every other field is the partition: another max_tokens, suffix or model never hits', async () => {
    for (const extra of [{ max_tokens: 7 }, { suffix: ' -- end' }, { model: 'davinci-002' }]) {
      const { original, variant } = question();
      await complete(original);
      const second = await complete(variant, extra);
      expect(second.response.headers.get('x-recall-cache')).toBe('MISS');
    }
  });

  it('array prompts, token prompts and echo skip the tier', async () => {
    const skipped = [
      (text: string) => complete([text]),
      // Token IDs (the SDK types them as number[]); other tokens for the variant, so it is no exact repeat.
      (text: string) => complete([text.charCodeAt(0), 2, 3] as unknown as string),
      (text: string) => complete(text, { echo: true }),
    ];
    for (const ask of skipped) {
      const { original, variant } = question();
      await ask(original);
      const before = sample(await scrape(recall.url), 'recall_semantic_lookups_total', { result: 'skipped' });
      const second = await ask(variant);
      expect(second.response.headers.get('x-recall-cache')).not.toBe('SEMANTIC');
      expect(sample(await scrape(recall.url), 'recall_semantic_lookups_total', { result: 'skipped' })).toBe(before + 1);
    }
  });

  it('guards hold for prompts too: another number never hits', async () => {
    await complete('What is 2+2?');
    const second = await complete('What is 2+3?');
    expect(second.response.headers.get('x-recall-cache')).toBe('MISS');
  });
});

describe('the upstream embedder', () => {
  let upstreamPair: RecallWithMock;
  beforeAll(async () => {
    upstreamPair = await startRecallWithMock({ 'semantic.embedder': 'upstream', 'semantic.upstream_model': 'text-embedding-3-small', 'semantic.dimensions': 64 });
  });
  afterAll(() => upstreamPair.close());
  beforeEach(() => upstreamPair.mock.reset());

  it("embeds the last user message upstream with the configured model and the client's key, once per text", async () => {
    const { original } = question();
    await upstreamPair.sdk.chat.completions.create(chat(original));
    await upstreamPair.sdk.chat.completions.create(chat(original), { headers: { 'cache-control': 'no-cache' } });
    const embeddingCalls = upstreamPair.mock.requests().filter((r) => r.path === '/v1/embeddings');
    expect(embeddingCalls).toHaveLength(1);
    expect(JSON.parse(embeddingCalls[0]!.body)).toMatchObject({ model: 'text-embedding-3-small', input: [original], dimensions: 64 });
    expect(embeddingCalls[0]!.headers.authorization).toBe('Bearer sk-test-client-key-000');
  });

  it('fails open: the embedder failing leaves the request a MISS that succeeds, counted and logged', async () => {
    const before = sample(await scrape(upstreamPair.recall.url), 'recall_semantic_errors_total', { stage: 'embed' });
    const { original } = question();
    upstreamPair.mock.failNext('500');
    const answer = await upstreamPair.sdk.chat.completions.create(chat(original)).withResponse();
    expect(answer.response.status).toBe(200);
    expect(answer.response.headers.get('x-recall-cache')).toBe('MISS');
    expect(answer.data.choices[0]?.message.content).toBeTruthy();
    const after = sample(await scrape(upstreamPair.recall.url), 'recall_semantic_errors_total', { stage: 'embed' });
    expect(after - before).toBe(1);
    expect(upstreamPair.recall.logText()).toContain('semantic embedder failed');
  });

  it('fails open when the embedder is too slow: the lookup gives up after its budget and the request goes upstream', async () => {
    const before = sample(await scrape(upstreamPair.recall.url), 'recall_semantic_errors_total', { stage: 'embed' });
    const { original } = question();
    // The client's headers go to the embeddings call too, so the mock delays it (and the chat call) by 2.5 s.
    const answer = await upstreamPair.sdk.chat.completions.create(chat(original), { headers: { 'x-mock-latency-ms': '2500' } }).withResponse();
    expect(answer.response.status).toBe(200);
    expect(answer.response.headers.get('x-recall-cache')).toBe('MISS');
    const after = sample(await scrape(upstreamPair.recall.url), 'recall_semantic_errors_total', { stage: 'embed' });
    expect(after - before).toBe(1);
  });
});

describe('semantic.enabled: false', () => {
  it('answers near-repeats from the upstream and reports an empty index', async () => {
    const off = await startRecallWithMock({ 'semantic.enabled': false });
    try {
      const { original, variant } = question();
      await off.sdk.chat.completions.create(chat(original));
      const second = await off.sdk.chat.completions.create(chat(variant)).withResponse();
      expect(second.response.headers.get('x-recall-cache')).toBe('MISS');
      expect(sample(await scrape(off.recall.url), 'recall_semantic_vectors')).toBe(0);
      expect(((await (await fetch(`${off.recall.url}/recall/stats`)).json()) as { semantic: unknown }).semantic).toBeNull();
    } finally {
      await off.close();
    }
  });
});
