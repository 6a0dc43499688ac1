// Per-input embeddings caching against the real mock upstream over HTTP: which inputs go upstream, what the client
// gets back (order, index, vectors bit for bit, encoding, usage), and what is stored.
import pino from 'pino';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import {
  EmbeddingsCache, MAX_EMBEDDING_INPUTS, apportionTokens, embeddingItemKey, type EmbeddingsAnswer, type EmbeddingsUpstreamAnswer,
} from '../../../src/cache/embeddings.js';
import { ExactTier } from '../../../src/cache/exact-tier.js';
import { MemoryStore } from '../../../src/cache/memory-store.js';
import type { CachePolicy } from '../../../src/cache/policy.js';
import { RecallError } from '../../../src/openai/errors.js';
import type { JsonObject } from '../../../src/openai/wire.js';

const MODEL = 'text-embedding-3-small';

let mock: MockUpstream;
let clock: number;
let logLines: string[];
let store: MemoryStore;
let cache: EmbeddingsCache;
/** Bodies `sendUpstream` sent, parsed, oldest first. */
let sent: JsonObject[];

const now = () => clock;

beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(async () => {
  await mock.close();
});
beforeEach(() => {
  mock.reset();
  clock = 1_700_000_000_000;
  logLines = [];
  sent = [];
  const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
  store = new MemoryStore({ maxEntries: 10_000, maxBytes: 64 * 1024 * 1024 }, now);
  cache = new EmbeddingsCache(new ExactTier(store, log, 1024 * 1024, now), now);
});

async function postEmbeddings(body: Buffer | string): Promise<EmbeddingsUpstreamAnswer> {
  const response = await fetch(`${mock.baseURL}/embeddings`, { method: 'POST', headers: { 'content-type': 'application/json' }, body });
  const headers: Record<string, string> = {};
  response.headers.forEach((value, name) => {
    headers[name] = value;
  });
  return { status: response.status, headers, body: Buffer.from(await response.arrayBuffer()) };
}

async function sendUpstream(body: Buffer): Promise<EmbeddingsUpstreamAnswer> {
  sent.push(JSON.parse(body.toString('utf8')) as JsonObject);
  return postEmbeddings(body);
}

function policy(overrides: Partial<CachePolicy> = {}): CachePolicy {
  return { read: true, write: true, maxAgeS: undefined, ttlS: 3600, namespace: 'default', ...overrides };
}

function ask(body: JsonObject, options: { tenant?: string; policy?: Partial<CachePolicy> } = {}): Promise<EmbeddingsAnswer> {
  return cache.answer({ tenant: options.tenant ?? 'tenant-a', policy: policy(options.policy), body }, sendUpstream);
}

interface EmbeddingList {
  object: string;
  data: { object: string; index: number; embedding: number[] | string }[];
  model: string;
  usage: { prompt_tokens: number; total_tokens: number };
}

function listOf(answer: { body: Buffer }): EmbeddingList {
  return JSON.parse(answer.body.toString('utf8')) as EmbeddingList;
}

/** The float32 bytes of one embedding, from either encoding; a float that is not exactly a float32 fails. */
function bytesOf(embedding: number[] | string): Buffer {
  if (typeof embedding === 'string') return Buffer.from(embedding, 'base64');
  const bytes = Buffer.alloc(embedding.length * 4);
  embedding.forEach((value, i) => {
    expect(Math.fround(value)).toBe(value);
    bytes.writeFloatLE(value, i * 4);
  });
  return bytes;
}

/** What the SDK hands its user for a base64 answer (openai/internal/utils/base64 toFloat32Array). */
function sdkDecode(base64: string): number[] {
  const buf = Buffer.from(base64, 'base64');
  return Array.from(new Float32Array(buf.buffer, buf.byteOffset, buf.length / Float32Array.BYTES_PER_ELEMENT));
}

/** The vectors the mock returns for these inputs when asked directly, as float32 bytes, in order. */
async function directVectors(input: unknown, extra: JsonObject = {}): Promise<Buffer[]> {
  const answer = await postEmbeddings(JSON.stringify({ model: MODEL, input, encoding_format: 'base64', ...extra }));
  expect(answer.status).toBe(200);
  return listOf(answer).data.map((item) => bytesOf(item.embedding));
}

const vectorsOf = (answer: { body: Buffer }) => listOf(answer).data.map((item) => bytesOf(item.embedding));
const indexesOf = (answer: { body: Buffer }) => listOf(answer).data.map((item) => item.index);

describe('EmbeddingsCache.cacheable', () => {
  it.each([
    ['a string', { model: MODEL, input: 'hello' }],
    ['strings', { model: MODEL, input: ['a', 'b'] }],
    ['one token array', { model: MODEL, input: [1, 2, 3] }],
    ['token arrays', { model: MODEL, input: [[1, 2], [3]] }],
    ['float and dimensions', { model: MODEL, input: 'x', encoding_format: 'float', dimensions: 8 }],
    ['2048 inputs', { model: MODEL, input: Array.from({ length: MAX_EMBEDDING_INPUTS }, (_, i) => `item ${i}`) }],
  ])('accepts %s', (_, body) => {
    expect(EmbeddingsCache.cacheable(body)).toBe(true);
  });

  it.each([
    ['no input', { model: MODEL }],
    ['no model', { input: 'hello' }],
    ['an empty string', { model: MODEL, input: '' }],
    ['an empty array', { model: MODEL, input: [] }],
    ['an empty string item', { model: MODEL, input: ['a', ''] }],
    ['an empty token array item', { model: MODEL, input: [[1], []] }],
    ['a fractional token', { model: MODEL, input: [1, 2.5] }],
    ['a negative token', { model: MODEL, input: [[1, -2]] }],
    ['mixed strings and token arrays', { model: MODEL, input: ['a', [1]] }],
    ['an object input', { model: MODEL, input: { text: 'a' } }],
    ['2049 inputs', { model: MODEL, input: Array.from({ length: MAX_EMBEDDING_INPUTS + 1 }, (_, i) => `item ${i}`) }],
    ['an unknown encoding', { model: MODEL, input: 'a', encoding_format: 'hex' }],
    ['zero dimensions', { model: MODEL, input: 'a', dimensions: 0 }],
    ['string dimensions', { model: MODEL, input: 'a', dimensions: '8' }],
    ['not an object', ['a']],
  ])('refuses %s, so the request goes upstream whole', (_, body) => {
    expect(EmbeddingsCache.cacheable(body)).toBe(false);
  });

  it('answer() will not take a request cacheable refuses', async () => {
    await expect(ask({ model: MODEL, input: '' })).rejects.toThrow(TypeError);
    expect(sent).toHaveLength(0);
  });
});

describe('misses and hits', () => {
  it('a full miss sends every input once as base64, answers them all and stores each', async () => {
    const input = ['alpha one', 'beta two', 'gamma three'];
    const answer = await ask({ model: MODEL, input, user: 'u-1' });
    expect(answer).toMatchObject({ status: 200, outcome: 'MISS', cachedInputs: 0, totalInputs: 3, storedInputs: 3 });
    expect(answer.headers['content-type']).toBe('application/json');
    expect(sent).toEqual([{ model: MODEL, input, user: 'u-1', encoding_format: 'base64' }]);
    expect(store.size).toBe(3);
    const list = listOf(answer);
    expect(list.object).toBe('list');
    expect(list.model).toBe(MODEL);
    expect(list.data.map((item) => item.object)).toEqual(['embedding', 'embedding', 'embedding']);
    expect(indexesOf(answer)).toEqual([0, 1, 2]);
    expect(vectorsOf(answer)).toEqual(await directVectors(input));
  });

  it('a repeat is a HIT with no upstream call and the same body', async () => {
    const body = { model: MODEL, input: ['repeat me', 'and me'] };
    const first = await ask(body);
    const second = await ask(body);
    expect(second).toMatchObject({ status: 200, outcome: 'HIT', cachedInputs: 2, totalInputs: 2, storedInputs: 0, ageS: 0, ttlS: 3600 });
    expect(second.headers).toEqual({ 'content-type': 'application/json' });
    expect(second.body.toString()).toBe(first.body.toString());
    expect(sent).toHaveLength(1);
    expect(mock.stats().byRoute['POST /v1/embeddings']).toBe(1);
  });

  it('a request with 2 of 4 inputs cached sends only the 2 missing and answers all 4 in order', async () => {
    await ask({ model: MODEL, input: ['first', 'third'], dimensions: 32 });
    sent = [];
    const input = ['first', 'second', 'third', 'fourth'];
    const answer = await ask({ model: MODEL, input, dimensions: 32, encoding_format: 'float' });
    expect(sent).toEqual([{ model: MODEL, input: ['second', 'fourth'], dimensions: 32, encoding_format: 'base64' }]);
    expect(answer).toMatchObject({ status: 200, outcome: 'PARTIAL', cachedInputs: 2, totalInputs: 4, storedInputs: 2 });
    expect(indexesOf(answer)).toEqual([0, 1, 2, 3]);
    const vectors = vectorsOf(answer);
    expect(vectors.map((v) => v.length)).toEqual([128, 128, 128, 128]);
    expect(vectors).toEqual(await directVectors(input, { dimensions: 32 }));
    expect(listOf(answer).model).toBe(MODEL);
  });

  it('identical inputs within one request are fetched once and answered at every position', async () => {
    const answer = await ask({ model: MODEL, input: ['same', 'other', 'same', 'same'] });
    expect(sent.map((body) => body.input)).toEqual([['same', 'other']]);
    expect(store.size).toBe(2);
    expect(indexesOf(answer)).toEqual([0, 1, 2, 3]);
    const vectors = vectorsOf(answer);
    expect(vectors).toEqual(await directVectors(['same', 'other', 'same', 'same']));
    expect(vectors[2]).toEqual(vectors[0]);
    expect(vectors[1]).not.toEqual(vectors[0]);
    // 'same' and 'other' cost 1 and 2 tokens at the mock; usage counts every position, as the API would.
    expect(listOf(answer).usage).toEqual({ prompt_tokens: 5, total_tokens: 5 });
  });

  it('a single string input goes upstream as a one-item list and comes back as one embedding', async () => {
    const answer = await ask({ model: MODEL, input: 'lonely string' });
    expect(sent[0]?.input).toEqual(['lonely string']);
    expect(indexesOf(answer)).toEqual([0]);
    expect(vectorsOf(answer)).toEqual(await directVectors('lonely string'));
  });
});

describe('encodings', () => {
  it('float, base64 and absent encoding_format give the same vectors from one entry', async () => {
    const input = ['encode me', 'and this'];
    const absent = await ask({ model: MODEL, input });
    const float = await ask({ model: MODEL, input, encoding_format: 'float' });
    const base64 = await ask({ model: MODEL, input, encoding_format: 'base64' });
    expect([absent.outcome, float.outcome, base64.outcome]).toEqual(['MISS', 'HIT', 'HIT']);
    expect(sent).toHaveLength(1);

    const absentList = listOf(absent);
    const base64List = listOf(base64);
    expect(absentList.data.every((item) => Array.isArray(item.embedding))).toBe(true);
    expect(listOf(float).data).toEqual(absentList.data);
    expect(base64List.data.every((item) => typeof item.embedding === 'string')).toBe(true);
    expect(base64List.data.map((item) => sdkDecode(item.embedding as string))).toEqual(absentList.data.map((item) => item.embedding));
  });

  it('base64 is byte-exact with what the upstream sends, on a hit as on a miss', async () => {
    const input = ['exact bytes', 'more bytes'];
    const direct = await postEmbeddings(JSON.stringify({ model: MODEL, input, encoding_format: 'base64' }));
    const miss = await ask({ model: MODEL, input, encoding_format: 'base64' });
    const hit = await ask({ model: MODEL, input, encoding_format: 'base64' });
    const strings = (answer: { body: Buffer }) => listOf(answer).data.map((item) => item.embedding);
    expect(strings(miss)).toEqual(strings(direct));
    expect(strings(hit)).toEqual(strings(direct));
    expect(hit.body.toString()).toBe(direct.body.toString());
  });

  it('float answers parse to the same numbers the upstream sends for float', async () => {
    const input = ['float compare'];
    const direct = await postEmbeddings(JSON.stringify({ model: MODEL, input, encoding_format: 'float' }));
    await ask({ model: MODEL, input });
    const hit = await ask({ model: MODEL, input, encoding_format: 'float' });
    expect(hit.outcome).toBe('HIT');
    expect(listOf(hit).data).toEqual(listOf(direct).data);
  });
});

describe('partitions', () => {
  it('dimensions partition the entries, and an absent dimensions is not an explicit one', async () => {
    await ask({ model: MODEL, input: 'dimensional' });
    const eight = await ask({ model: MODEL, input: 'dimensional', dimensions: 8 });
    const sixteen = await ask({ model: MODEL, input: 'dimensional', dimensions: 16 });
    const again = await ask({ model: MODEL, input: 'dimensional' });
    expect([eight.outcome, sixteen.outcome, again.outcome]).toEqual(['MISS', 'MISS', 'HIT']);
    expect(sent).toHaveLength(3);
    expect(vectorsOf(eight)[0]).toHaveLength(32);
    expect(vectorsOf(again)[0]).toHaveLength(64);
  });

  it('the model partitions the entries', async () => {
    await ask({ model: MODEL, input: 'model bound' });
    const other = await ask({ model: 'text-embedding-3-large', input: 'model bound' });
    expect(other.outcome).toBe('MISS');
    expect(listOf(other).model).toBe('text-embedding-3-large');
  });

  it('another tenant or namespace does not see the entries', async () => {
    const body = { model: MODEL, input: ['private a', 'private b'] };
    await ask(body);
    expect((await ask(body, { tenant: 'tenant-b' })).outcome).toBe('MISS');
    expect((await ask(body, { policy: { namespace: 'team-x' } })).outcome).toBe('MISS');
    expect((await ask(body)).outcome).toBe('HIT');
    expect(sent).toHaveLength(3);
    // Item keys carry their namespace in clear, so a namespace purge removes exactly its entries.
    expect(embeddingItemKey({ tenant: 'tenant-a', namespace: 'team-x', body, item: 'private a' })).toMatch(/^team-x:[0-9a-f]{64}$/);
    expect(await store.deletePrefix('team-x:')).toBe(2);
  });

  it('user and encoding_format do not change the item key; an unknown field does', () => {
    const key = (body: JsonObject) => embeddingItemKey({ tenant: 't', namespace: 'default', body, item: 'x' });
    const base = key({ model: MODEL, input: 'x' });
    expect(key({ model: MODEL, input: ['y', 'x'], user: 'someone', encoding_format: 'base64' })).toBe(base);
    expect(key({ model: MODEL, input: 'x', provider_option: 1 })).not.toBe(base);
    expect(embeddingItemKey({ tenant: 't', namespace: 'default', body: { model: MODEL, input: [[1]] }, item: [1] }))
      .not.toBe(embeddingItemKey({ tenant: 't', namespace: 'default', body: { model: MODEL, input: ['1'] }, item: '1' }));
  });
});

describe('token-array inputs', () => {
  it('a flat token array is one input, shared with the same array inside a list', async () => {
    const single = await ask({ model: MODEL, input: [11, 12, 13] });
    expect(single.totalInputs).toBe(1);
    expect(sent[0]?.input).toEqual([[11, 12, 13]]);
    const answer = await ask({ model: MODEL, input: [[11, 12, 13], [21, 22]] });
    expect(answer).toMatchObject({ outcome: 'PARTIAL', cachedInputs: 1, totalInputs: 2 });
    expect(sent[1]?.input).toEqual([[21, 22]]);
    expect(vectorsOf(answer)).toEqual(await directVectors([[11, 12, 13], [21, 22]]));
    // A token array costs its length at the mock.
    expect(listOf(answer).usage.prompt_tokens).toBe(5);
  });
});

describe('headers', () => {
  it('an answer that went upstream keeps its request id and openai-* headers, and nothing else of the upstream', async () => {
    const answer = await cache.answer({ tenant: 'tenant-a', policy: policy(), body: { model: MODEL, input: 'with headers' } }, async (body) => {
      const upstream = await sendUpstream(body);
      return { ...upstream, headers: { ...upstream.headers, 'x-request-id': 'req_123', 'openai-processing-ms': '7', 'set-cookie': 'a=b' } };
    });
    expect(answer.headers).toEqual({ 'content-type': 'application/json', 'x-request-id': 'req_123', 'openai-processing-ms': '7' });
  });
});

describe('upstream failures', () => {
  it('a non-2xx answer passes unchanged and stores nothing', async () => {
    mock.failNext('429');
    const answer = await ask({ model: MODEL, input: ['limited a', 'limited b'] });
    expect(answer.status).toBe(429);
    expect(answer).toMatchObject({ outcome: 'MISS', cachedInputs: 0, storedInputs: 0 });
    expect(answer.headers['retry-after']).toBe('1');
    expect(JSON.parse(answer.body.toString()).error.code).toBe('rate_limit_exceeded');
    expect(store.size).toBe(0);
    const retry = await ask({ model: MODEL, input: ['limited a', 'limited b'] });
    expect(retry.outcome).toBe('MISS');
    expect(store.size).toBe(2);
  });

  it('a non-2xx answer to a partly cached request passes unchanged too', async () => {
    await ask({ model: MODEL, input: 'kept' });
    mock.failNext('500');
    const answer = await ask({ model: MODEL, input: ['kept', 'failed'] });
    expect(answer.status).toBe(500);
    expect(JSON.parse(answer.body.toString()).error.type).toBe('server_error');
    expect(store.size).toBe(1);
  });

  it('a 2xx answer that is not an embeddings list is a broken upstream answer, and nothing is stored', async () => {
    mock.failNext('garbage-stream');
    const failure = await ask({ model: MODEL, input: 'garbled' }).catch((err: unknown) => err);
    expect(failure).toBeInstanceOf(RecallError);
    expect((failure as RecallError).kind).toBe('upstreamBrokenResponse');
    expect(store.size).toBe(0);
  });
});

describe('usage', () => {
  it('a full miss reports exactly what the upstream charged', async () => {
    const input = ['a somewhat longer sentence here', 'short', 'mid length text'];
    const direct = listOf(await postEmbeddings(JSON.stringify({ model: MODEL, input })));
    const miss = listOf(await ask({ model: MODEL, input }));
    expect(miss.usage).toEqual(direct.usage);
    expect(listOf(await ask({ model: MODEL, input })).usage).toEqual(direct.usage);
  });

  it('cached items keep their share of the batch that produced them', async () => {
    // The mock charges ceil(chars / 4): 1 + 3 = 4 tokens, which shares out by characters as 1 and 3.
    await ask({ model: MODEL, input: ['aaaa', 'bbbbbbbbbbbb'] });
    expect(listOf(await ask({ model: MODEL, input: 'aaaa' })).usage.prompt_tokens).toBe(1);
    expect(listOf(await ask({ model: MODEL, input: 'bbbbbbbbbbbb' })).usage.prompt_tokens).toBe(3);
    // A partial answer: 3 cached + 2 charged now for 'cccccccc'.
    const partial = await ask({ model: MODEL, input: ['bbbbbbbbbbbb', 'cccccccc'] });
    expect(partial.outcome).toBe('PARTIAL');
    expect(listOf(partial).usage).toEqual({ prompt_tokens: 5, total_tokens: 5 });
  });

  it('apportionTokens gives whole shares that sum exactly to the total', () => {
    expect(apportionTokens(10, [1, 1, 1])).toEqual([4, 3, 3]);
    expect(apportionTokens(4, [4, 12])).toEqual([1, 3]);
    expect(apportionTokens(0, [5, 7])).toEqual([0, 0]);
    expect(apportionTokens(7, [3])).toEqual([7]);
    const weights = [13, 1, 250, 7, 7, 42, 3];
    for (const total of [1, 2, 17, 99, 1000, 12345]) {
      const shares = apportionTokens(total, weights);
      expect(shares.reduce((a, b) => a + b, 0)).toBe(total);
      shares.forEach((share, i) => expect(Math.abs(share - (total * (weights[i] ?? 0)) / 323)).toBeLessThan(1));
    }
  });
});

describe('request controls', () => {
  it('read false looks nothing up, sends every input, and still stores', async () => {
    const body = { model: MODEL, input: ['fresh a', 'fresh b'] };
    await ask(body);
    const answer = await ask(body, { policy: { read: false } });
    expect(answer).toMatchObject({ outcome: 'MISS', cachedInputs: 0, storedInputs: 2 });
    expect(sent.map((b) => b.input)).toEqual([['fresh a', 'fresh b'], ['fresh a', 'fresh b']]);
  });

  it('write false stores nothing', async () => {
    const body = { model: MODEL, input: ['transient'] };
    const answer = await ask(body, { policy: { write: false } });
    expect(answer).toMatchObject({ status: 200, outcome: 'MISS', storedInputs: 0 });
    expect(store.size).toBe(0);
    expect((await ask(body)).outcome).toBe('MISS');
    expect(sent).toHaveLength(2);
  });

  it('max-age turns older entries into misses; the TTL bounds how long they live', async () => {
    const body = { model: MODEL, input: ['aging'] };
    await ask(body, { policy: { ttlS: 60 } });
    clock += 30_000;
    const young = await ask(body, { policy: { maxAgeS: 40 } });
    expect(young).toMatchObject({ outcome: 'HIT', ageS: 30, ttlS: 30 });
    expect((await ask(body, { policy: { maxAgeS: 20, write: false } })).outcome).toBe('MISS');
    clock += 31_000;
    expect((await ask(body)).outcome).toBe('MISS');
    expect(sent).toHaveLength(3);
  });

  it('a store that fails turns into a miss with a warning, and the answer still comes', async () => {
    const log = pino({ level: 'debug' }, { write: (line: string) => void logLines.push(line) });
    const failing = new (class extends MemoryStore {
      override async get(): Promise<undefined> {
        throw new Error('store down');
      }
    })({ maxEntries: 10, maxBytes: 1024 * 1024 }, now);
    const failOpen = new EmbeddingsCache(new ExactTier(failing, log, 1024 * 1024, now), now);
    const answer = await failOpen.answer({ tenant: 'tenant-a', policy: policy(), body: { model: MODEL, input: ['down a', 'down b'] } }, sendUpstream);
    expect(answer).toMatchObject({ status: 200, outcome: 'MISS', totalInputs: 2 });
    expect(vectorsOf(answer)).toEqual(await directVectors(['down a', 'down b']));
    expect(logLines.map((line) => JSON.parse(line).msg)).toEqual(['cache lookup failed; answering from the upstream']);
  });

  it('an unreadable entry is fetched again and replaced', async () => {
    const body = { model: MODEL, input: 'mangled' };
    const key = embeddingItemKey({ tenant: 'tenant-a', namespace: 'default', body, item: 'mangled' });
    await store.set(key, { body: Buffer.from('not an entry'), storedAt: clock, expiresAt: clock + 60_000 });
    const answer = await ask(body);
    expect(answer.outcome).toBe('MISS');
    expect(vectorsOf(answer)).toEqual(await directVectors('mangled'));
    expect((await ask(body)).outcome).toBe('HIT');
  });
});
