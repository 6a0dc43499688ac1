// Token budgets (tokens per minute per API key), as a client sees them in OpenAI's x-ratelimit-*-tokens headers: a
// call reserves its estimate (prompt counted with gpt-tokenizer plus max_tokens), the reservation is corrected to
// the upstream's usage, cache hits and followers of an identical call spend nothing unless configured, a request
// that does not fit is answered 429 (type tokens) without reaching the upstream, and instances on one Redis share it.
import OpenAI from 'openai';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sample, scrape } from '../../support/metrics.js';
import { startRecallWithMock, startTwoOnRedis, type RecallWithMock, type TwoOnRedis } from '../../support/recall.js';

const BUDGET = 5_000;
const MAX_TOKENS = 400;
const question = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: 'Name three rivers of Europe and say where each one ends.' }], max_tokens: MAX_TOKENS };

/** One chat completion in a namespace of its own (a miss with the same estimate each time), with its headers. */
async function ask(sdk: OpenAI, namespace: string, body: OpenAI.ChatCompletionCreateParamsNonStreaming = question) {
  const { data, response } = await sdk.chat.completions.create(body, { headers: { 'x-recall-namespace': namespace } }).withResponse();
  const header = response.headers.get('x-ratelimit-remaining-tokens');
  return { usage: data.usage!.total_tokens, remaining: header === null ? undefined : Number(header), cache: response.headers.get('x-recall-cache'), headers: response.headers };
}

describe('token budget, in memory', () => {
  let setup: RecallWithMock;
  let sdk: OpenAI;

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'limits.tokens_per_minute': BUDGET });
    sdk = setup.recall.client({ apiKey: 'sk-budget-alpha-0001' });
  });
  afterAll(() => setup.close());

  it('reserves the estimate, corrects it to the usage, lets hits and coalesced followers through free, and refuses what does not fit', async () => {
    const first = await ask(sdk, 'a');
    expect(first.cache).toBe('MISS');
    expect(first.headers.get('x-ratelimit-limit-tokens')).toBe(String(BUDGET));
    expect(first.headers.get('x-ratelimit-reset-tokens')).toMatch(/^(\d+m)?\d+(\.\d+)?s$/);
    const estimate = BUDGET - first.remaining!;
    expect(estimate).toBeGreaterThan(MAX_TOKENS);
    // The mock answers with fewer tokens than the estimate allowed for: the correction is visible.
    expect(first.usage).toBeLessThan(estimate);

    const second = await ask(sdk, 'b');
    expect(second.remaining).toBe(BUDGET - first.usage - estimate);

    // A hit costs the upstream nothing and spends nothing.
    const hit = await ask(sdk, 'a');
    expect(hit.cache).toBe('HIT');
    expect(hit.remaining).toBeUndefined();

    // Two identical requests at once: the one that calls the upstream spends, the one that joins it does not.
    const slow = { headers: { 'x-recall-namespace': 'c', 'x-mock-latency-ms': '300' } };
    const pair = await Promise.all([0, 1].map(() => sdk.chat.completions.create(question, slow).withResponse()));
    expect(pair.map((p) => p.response.headers.get('x-recall-cache')).sort()).toEqual(['COALESCED', 'MISS']);
    const used = first.usage + second.usage + pair[0]!.data.usage!.total_tokens;
    const next = await ask(sdk, 'd');
    expect(next.remaining).toBe(BUDGET - used - estimate);

    // A request whose estimate is one token more than what is left: 429 in OpenAI's shape, and no upstream call.
    const left = BUDGET - used - next.usage;
    const prompt = estimate - MAX_TOKENS;
    const upstreamBefore = setup.mock.stats().requests;
    const err = await sdk.chat.completions.create({ ...question, max_tokens: left - prompt + 1 }, { headers: { 'x-recall-namespace': 'e' } }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    const limited = err as InstanceType<typeof OpenAI.RateLimitError>;
    expect(limited.type).toBe('tokens');
    expect(limited.code).toBe('rate_limit_exceeded');
    expect(limited.message).toContain(`requested ${left + 1}`);
    expect(Number(limited.headers.get('retry-after'))).toBeGreaterThanOrEqual(1);
    expect(limited.headers.get('x-ratelimit-remaining-tokens')).toBe(String(left));
    expect(setup.mock.stats().requests).toBe(upstreamBefore);

    // Exactly what is left fits.
    const exact = await ask(sdk, 'f', { ...question, max_tokens: left - prompt });
    expect(exact.remaining).toBe(0);
    expect(sample(await scrape(setup.recall.url), 'recall_rate_limited_requests_total', { limit: 'tokens', route: '/v1/chat/completions' })).toBe(1);
  });

  it('corrects a streamed call to the usage of its stream', async () => {
    // The estimate of the plain request below, read on a fresh budget.
    const estimate = BUDGET - (await ask(setup.recall.client({ apiKey: 'sk-budget-stream-0006' }), 'u')).remaining!;
    const sdk = setup.recall.client({ apiKey: 'sk-budget-stream-0005' });
    const stream = await sdk.chat.completions.create({ ...question, stream: true, stream_options: { include_usage: true } }, { headers: { 'x-recall-namespace': 's' } });
    let usage = 0;
    for await (const chunk of stream) if (chunk.usage) usage = chunk.usage.total_tokens;
    expect(usage).toBeGreaterThan(0);
    expect(usage).toBeLessThan(estimate);
    // The stream's reservation was replaced by its usage.
    expect((await ask(sdk, 't')).remaining).toBe(BUDGET - usage - estimate);
  });

  it('gives every API key its own budget', async () => {
    const one = setup.recall.client({ apiKey: 'sk-budget-beta-0002' });
    const first = await ask(one, 'own-1');
    const estimate = BUDGET - first.remaining!;
    expect((await ask(one, 'own-2')).remaining).toBe(BUDGET - first.usage - estimate);
    // What the first key spent is not the other's: it starts with its whole budget, less its own estimate.
    const other = await ask(setup.recall.client({ apiKey: 'sk-budget-delta-0004' }), 'own-3');
    expect(other.remaining).toBe(BUDGET - estimate);
  });

  it('spends embeddings inputs too, estimated from the inputs', async () => {
    const { response } = await setup.recall.client({ apiKey: 'sk-budget-gamma-0003' }).embeddings
      .create({ model: 'text-embedding-3-small', input: ['one river', 'two rivers'] }).withResponse();
    const remaining = Number(response.headers.get('x-ratelimit-remaining-tokens'));
    expect(remaining).toBeLessThan(BUDGET);
    expect(remaining).toBeGreaterThan(BUDGET - 20);
  });

  it('refuses at once a request larger than the whole budget', async () => {
    const err = await setup.recall.client({ apiKey: 'sk-budget-delta-0004' }).chat.completions.create({ ...question, max_tokens: BUDGET }).then(() => undefined, (e: unknown) => e);
    expect(err).toBeInstanceOf(OpenAI.RateLimitError);
    expect((err as Error).message).toMatch(/Request too large: limit 5000 tokens per minute/);
  });
});

describe('token budget on requests forwarded uncached', () => {
  let setup: RecallWithMock;

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'limits.tokens_per_minute': BUDGET, 'cache.cache_nonzero_temperature': false });
  });
  afterAll(() => setup.close());

  it('corrects a BYPASS answer to its usage too', async () => {
    const sdk = setup.recall.client({ apiKey: 'sk-budget-bypass-0001' });
    const sampled = { ...question, temperature: 0.7 };
    const first = await ask(sdk, 'a', sampled);
    expect(first.cache).toBe('BYPASS');
    const estimate = BUDGET - first.remaining!;
    expect(first.usage).toBeLessThan(estimate);
    expect((await ask(sdk, 'b', sampled)).remaining).toBe(BUDGET - first.usage - estimate);
  });
});

describe('token budget with limits.hits_spend_tokens', () => {
  let setup: RecallWithMock;

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'limits.tokens_per_minute': BUDGET, 'limits.hits_spend_tokens': true });
  });
  afterAll(() => setup.close());

  it('makes a hit spend its stored usage', async () => {
    const sdk = setup.recall.client({ apiKey: 'sk-budget-hits-0001' });
    const first = await ask(sdk, 'a');
    const estimate = BUDGET - first.remaining!;
    const hit = await ask(sdk, 'a');
    expect(hit.cache).toBe('HIT');
    // Reserved on arrival like any request, then corrected to the usage the entry carries.
    expect(hit.remaining).toBe(BUDGET - first.usage - estimate);
    const after = await ask(sdk, 'b');
    expect(after.remaining).toBe(BUDGET - 2 * first.usage - estimate);
  });

  it('makes each follower of an identical call spend the usage of the answer it shares, not its estimate', async () => {
    const sdk = setup.recall.client({ apiKey: 'sk-budget-hits-0002' });
    const slow = { headers: { 'x-recall-namespace': 'c', 'x-mock-latency-ms': '300' } };
    const pair = await Promise.all([0, 1].map(() => sdk.chat.completions.create(question, slow).withResponse()));
    expect(pair.map((p) => p.response.headers.get('x-recall-cache')).sort()).toEqual(['COALESCED', 'MISS']);
    // Both reserved on arrival: the second one to reserve saw two estimates spent.
    const estimate = BUDGET - Math.max(...pair.map((p) => Number(p.response.headers.get('x-ratelimit-remaining-tokens'))));
    const usage = pair[0]!.data.usage!.total_tokens;
    expect(pair[1]!.data.usage!.total_tokens).toBe(usage);
    expect(usage).toBeLessThan(estimate);
    // Leader and follower are each corrected to the stored usage; the next request has only its own estimate pending.
    const after = await ask(sdk, 'd');
    expect(after.remaining).toBe(BUDGET - 2 * usage - estimate);
  });
});

describe('token budget, shared by instances on one Redis', () => {
  let pair: TwoOnRedis;

  beforeAll(async () => {
    // No semantic tier: its Redis feed is not what these tests are about (and it reports a crashed Redis on its own).
    pair = await startTwoOnRedis({ 'limits.tokens_per_minute': BUDGET, 'semantic.enabled': false });
  });
  afterAll(() => pair.close());

  it('spends one budget per key across instances, corrected to the usage', async () => {
    const apiKey = 'sk-budget-shared-0001';
    const first = await ask(pair.first.client({ apiKey }), 'a');
    const estimate = BUDGET - first.remaining!;
    const other = await ask(pair.second.client({ apiKey }), 'b');
    expect(other.remaining).toBe(BUDGET - first.usage - estimate);
    const elsewhere = await ask(pair.second.client({ apiKey: 'sk-budget-shared-0002' }), 'a');
    expect(elsewhere.remaining).toBe(BUDGET - estimate);
  });

  it('lets requests through while Redis is down (fail open), and says so in the log once', async () => {
    await pair.redis.crash();
    const sdk = pair.first.client({ apiKey: 'sk-budget-shared-0001' });
    for (const namespace of ['down-1', 'down-2']) {
      const answer = await ask(sdk, namespace);
      expect(answer.cache).toBe('MISS');
      expect(answer.remaining).toBeUndefined();
    }
    expect(pair.first.logLines().filter((line) => line.msg === 'token budget unavailable; requests are let through')).toHaveLength(1);
  });
});
