// Embeddings batching as a user sees it through the official SDK: concurrent cache misses share upstream calls, each
// request still gets exactly its own answer, and requests that must not share a call never do.
import OpenAI, { APIError } from 'openai';
import { afterEach, describe, expect, it } from 'vitest';
import { startRecallWithMock, eventually, type RecallWithMock, type RunningRecall } from '../../support/recall.js';

const MODEL = 'text-embedding-3-small';
/** Long enough for every concurrent request of a test to arrive before its batch is sent by the window. */
const WINDOW_MS = 1_000;

let pair: RecallWithMock | undefined;
let run = 0;

afterEach(async () => {
  await pair?.close();
  pair = undefined;
});

async function start(settings: Record<string, unknown> = {}): Promise<RecallWithMock> {
  run++;
  pair = await startRecallWithMock({ 'embeddings.batch_window_ms': WINDOW_MS, 'embeddings.batch_max_inputs': 32, ...settings });
  return pair;
}

/** The mock upstream straight, for what it answers a request without Recall in between. */
function direct(p: RecallWithMock): OpenAI {
  return new OpenAI({ baseURL: p.mock.baseURL, apiKey: 'sk-direct', maxRetries: 0 });
}

interface UpstreamCall {
  model: string;
  input: string[];
  authorization: string | undefined;
}

function upstreamCalls(p: RecallWithMock): UpstreamCall[] {
  return p.mock.requests().filter((r) => r.path === '/v1/embeddings').map((r) => {
    const body = JSON.parse(r.body) as { model: string; input: string[] };
    return { model: body.model, input: body.input, authorization: r.headers.authorization as string | undefined };
  });
}

async function metric(recall: RunningRecall, series: string): Promise<number> {
  const text = await (await fetch(`${recall.url}/metrics`)).text();
  const line = text.split('\n').find((l) => l.startsWith(`${series} `));
  return line === undefined ? 0 : Number(line.split(' ').at(-1));
}

function rejection(promise: Promise<unknown>): Promise<APIError> {
  return promise.then(
    () => {
      throw new Error('the request succeeded');
    },
    (caught: unknown) => {
      expect(caught).toBeInstanceOf(APIError);
      return caught as APIError;
    },
  );
}

describe('concurrent misses share upstream calls', () => {
  it('500 concurrent single-input requests take at most ceil(500/32) upstream calls, each answered for its own input', async () => {
    const p = await start();
    const inputs = Array.from({ length: 500 }, (_, i) => `batched input ${run}-${i}`);
    const answers = await Promise.all(inputs.map((input) => p.sdk.embeddings.create({ model: MODEL, input }).withResponse()));

    const calls = upstreamCalls(p);
    expect(calls.length).toBeLessThanOrEqual(Math.ceil(500 / 32));
    expect(calls.flatMap((call) => call.input).sort()).toEqual([...inputs].sort());
    const expected = await direct(p).embeddings.create({ model: MODEL, input: inputs });
    answers.forEach(({ data, response }, i) => {
      expect(response.headers.get('x-recall-cache')).toBe('MISS');
      expect(data.data).toHaveLength(1);
      expect(data.data[0]?.index).toBe(0);
      expect(data.data[0]?.embedding).toEqual(expected.data[i]?.embedding);
      expect(data.usage.prompt_tokens).toBeGreaterThan(0);
    });

    expect(await metric(p.recall, 'recall_embeddings_batch_inputs_count')).toBe(calls.length);
    expect(await metric(p.recall, 'recall_embeddings_batch_inputs_sum')).toBe(500);
    expect(await metric(p.recall, 'recall_embeddings_batch_requests_sum')).toBe(500);
    expect(await metric(p.recall, 'recall_embeddings_batches_total{trigger="full"}')).toBeGreaterThanOrEqual(15);
    expect(await metric(p.recall, 'recall_embeddings_batch_gathering_inputs')).toBe(0);
  });

  it('requests with different models or different API keys never share a call', async () => {
    const p = await start();
    const groups = [
      { model: MODEL, key: 'sk-group-one' },
      { model: MODEL, key: 'sk-group-two' },
      { model: 'text-embedding-3-large', key: 'sk-group-one' },
      { model: 'text-embedding-3-large', key: 'sk-group-two' },
    ];
    const requests = groups.flatMap((group, g) => Array.from({ length: 8 }, (_, i) => ({ ...group, input: `group ${g} item ${i} run ${run}` })));
    const answers = await Promise.all(requests.map(({ model, key, input }) => p.recall.client({ apiKey: key }).embeddings.create({ model, input })));

    const calls = upstreamCalls(p);
    expect(calls).toHaveLength(4);
    for (const call of calls) {
      const group = Number(/^group (\d)/.exec(call.input[0] ?? '')?.[1]);
      expect(call.input.every((input) => input.startsWith(`group ${group} `))).toBe(true);
      expect(call.model).toBe(groups[group]?.model);
      expect(call.authorization).toBe(`Bearer ${groups[group]?.key}`);
    }
    answers.forEach((answer, i) => expect(answer.model).toBe(requests[i]?.model));
  });

  it('usage shares add up to what the upstream charged for the inputs together', async () => {
    const p = await start();
    const inputs = ['a short one', 'a somewhat longer input text', 'x'];
    const answers = await Promise.all(inputs.map((input) => p.sdk.embeddings.create({ model: MODEL, input: `${input} ${run}` })));
    expect(upstreamCalls(p)).toHaveLength(1);
    const together = await direct(p).embeddings.create({ model: MODEL, input: inputs.map((input) => `${input} ${run}`) });
    expect(answers.reduce((sum, answer) => sum + answer.usage.prompt_tokens, 0)).toBe(together.usage.prompt_tokens);
    for (const answer of answers) expect(answer.usage.total_tokens).toBe(answer.usage.prompt_tokens);
  });

  it('float and base64 requests share a call, each answered byte for byte in its own encoding', async () => {
    const p = await start();
    const post = (input: string, encoding?: 'float' | 'base64') =>
      fetch(`${p.recall.baseURL}/embeddings`, {
        method: 'POST',
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-client-key-000' },
        body: JSON.stringify({ model: MODEL, input, dimensions: 32, ...(encoding === undefined ? {} : { encoding_format: encoding }) }),
      });
    const asked = [['as floats', 'float'], ['as base64', 'base64'], ['as the default', undefined]] as const;
    const responses = await Promise.all(asked.map(([input, encoding]) => post(`${input} ${run}`, encoding)));
    expect(upstreamCalls(p)).toHaveLength(1);
    for (const [i, [input, encoding]] of asked.entries()) {
      const response = responses[i] as Response;
      expect(response.status).toBe(200);
      const body = (await response.json()) as { data: { embedding: number[] | string }[] };
      const own = await fetch(`${p.mock.baseURL}/embeddings`, {
        method: 'POST', headers: { 'content-type': 'application/json' },
        body: JSON.stringify({ model: MODEL, input: `${input} ${run}`, dimensions: 32, encoding_format: encoding ?? 'float' }),
      });
      const expected = (await own.json()) as { data: { embedding: number[] | string }[] };
      expect(body.data[0]?.embedding).toEqual(expected.data[0]?.embedding);
      expect(typeof body.data[0]?.embedding).toBe(encoding === 'base64' ? 'string' : 'object');
    }
  });

  it('with some inputs cached, only the misses of each request go into the shared call', async () => {
    const p = await start();
    const [a, b, c, d, e] = ['a', 'b', 'c', 'd', 'e'].map((name) => `partial ${name} ${run}`) as [string, string, string, string, string];
    await p.sdk.embeddings.create({ model: MODEL, input: [a, b] });
    p.mock.reset();

    const [first, second] = await Promise.all([
      p.sdk.embeddings.create({ model: MODEL, input: [a, c] }).withResponse(),
      p.sdk.embeddings.create({ model: MODEL, input: [b, d, e] }).withResponse(),
    ]);
    const calls = upstreamCalls(p);
    expect(calls).toHaveLength(1);
    expect([...(calls[0]?.input ?? [])].sort()).toEqual([c, d, e]);
    expect(first.response.headers.get('cache-status')).toBe('recall; fwd=partial; stored; detail=cached-1-of-2');
    expect(second.response.headers.get('cache-status')).toBe('recall; fwd=partial; stored; detail=cached-1-of-3');
    const expected = await direct(p).embeddings.create({ model: MODEL, input: [a, c, b, d, e] });
    const vectors = (answer: typeof first) => answer.data.data.map((item) => item.embedding);
    expect(vectors(first)).toEqual(expected.data.slice(0, 2).map((item) => item.embedding));
    expect(vectors(second)).toEqual(expected.data.slice(2).map((item) => item.embedding));
    expect(second.data.data.map((item) => item.index)).toEqual([0, 1, 2]);
  });
});

describe('failures stay with their own batch', () => {
  it("a failing batch fails only its own requests, each with the upstream's error", async () => {
    const p = await start();
    // A Retry-After longer than Recall waits for: the 429 passes through instead of being retried.
    const failing = p.recall.client({ apiKey: 'sk-failing', defaultHeaders: { 'x-mock-fault': '429', 'x-mock-retry-after': '3600' } });
    const healthy = p.recall.client({ apiKey: 'sk-healthy' });
    const doomed = Array.from({ length: 5 }, (_, i) => rejection(failing.embeddings.create({ model: MODEL, input: `doomed ${i} ${run}` })));
    const fine = Array.from({ length: 5 }, (_, i) => healthy.embeddings.create({ model: MODEL, input: `fine ${i} ${run}` }));
    const errors = await Promise.all(doomed);
    const answers = await Promise.all(fine);

    expect(upstreamCalls(p)).toHaveLength(2);
    for (const error of errors) {
      expect(error.status).toBe(429);
      expect(error.code).toBe('rate_limit_exceeded');
      expect(error.message).toMatch(/Rate limit reached for requests/);
      expect(error.headers?.get('retry-after')).toBe('3600');
      expect(error.headers?.get('x-ratelimit-remaining-requests')).toBe('0');
    }
    for (const answer of answers) expect(answer.data).toHaveLength(1);
  });

  it('a batch refused for one input is sent again request by request, so only that request fails', async () => {
    const p = await start();
    // The mock counts four characters a token and, like OpenAI, refuses an input over 8192 tokens.
    const tooLong = rejection(p.sdk.embeddings.create({ model: MODEL, input: 'x'.repeat(4 * 9_000) }));
    const fine = [1, 2].map((i) => p.sdk.embeddings.create({ model: MODEL, input: `fine ${i} ${run}` }));
    const error = await tooLong;
    expect(error.status).toBe(400);
    expect(error.message).toMatch(/maximum context length is 8192 tokens/);
    for (const answer of await Promise.all(fine)) expect(answer.data).toHaveLength(1);
    expect(upstreamCalls(p)).toHaveLength(4);
    expect(await metric(p.recall, 'recall_embeddings_batches_total{trigger="split"}')).toBe(3);
  });

  it('a client that leaves while its batch gathers is left out of the call', async () => {
    const p = await start();
    const leaving = new AbortController();
    const post = (input: string, signal?: AbortSignal) =>
      fetch(`${p.recall.baseURL}/embeddings`, {
        method: 'POST', signal,
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-test-client-key-000' },
        body: JSON.stringify({ model: MODEL, input: [input] }),
      });
    const left = post(`leaves ${run}`, leaving.signal).catch((caught: unknown) => caught);
    const stays = post(`stays ${run}`);
    await eventually(async () => (await metric(p.recall, 'recall_embeddings_batch_gathering_inputs')) === 2, 'both requests are gathering');
    leaving.abort();
    await eventually(async () => (await metric(p.recall, 'recall_embeddings_batch_gathering_inputs')) === 1, 'the request that left is out');
    const stayed = await stays;
    expect(stayed.status).toBe(200);
    expect(((await stayed.json()) as { data: unknown[] }).data).toHaveLength(1);
    expect(await left).toBeInstanceOf(Error);
    expect(upstreamCalls(p).map((call) => call.input)).toEqual([[`stays ${run}`]]);
  });
});

describe('priority and configuration', () => {
  it('X-Recall-Priority: high skips the window and takes the gathered requests along', async () => {
    const p = await start();
    const waiting = p.sdk.embeddings.create({ model: MODEL, input: `patient ${run}` });
    await eventually(async () => (await metric(p.recall, 'recall_embeddings_batch_gathering_inputs')) === 1, 'the first request is gathering');
    const urgent = p.recall.client({ defaultHeaders: { 'x-recall-priority': 'high' } });
    const answers = await Promise.all([urgent.embeddings.create({ model: MODEL, input: `urgent ${run}` }), waiting]);
    expect(answers.map((answer) => answer.data.length)).toEqual([1, 1]);
    expect(upstreamCalls(p).map((call) => [...call.input].sort())).toEqual([[`patient ${run}`, `urgent ${run}`]]);
    expect(await metric(p.recall, 'recall_embeddings_batches_total{trigger="priority"}')).toBe(1);
    expect(await metric(p.recall, 'recall_embeddings_batches_total{trigger="window"}')).toBe(0);
  });

  it('an invalid X-Recall-Priority is a 400 that names the header', async () => {
    const p = await start();
    const client = p.recall.client({ defaultHeaders: { 'x-recall-priority': 'urgent' } });
    const error = await rejection(client.embeddings.create({ model: MODEL, input: 'anything' }));
    expect(error.status).toBe(400);
    expect(error.code).toBe('invalid_header');
    expect(error.param).toBe('X-Recall-Priority');
    expect(upstreamCalls(p)).toHaveLength(0);
  });

  it('with batching off, each request goes upstream on its own', async () => {
    const p = await start({ 'embeddings.batch_window_ms': 0 });
    const inputs = Array.from({ length: 20 }, (_, i) => `unbatched ${i} ${run}`);
    const answers = await Promise.all(inputs.map((input) => p.sdk.embeddings.create({ model: MODEL, input })));
    expect(answers.every((answer) => answer.data.length === 1)).toBe(true);
    expect(upstreamCalls(p).map((call) => call.input).sort()).toEqual(inputs.map((input) => [input]).sort());
    expect(await metric(p.recall, 'recall_embeddings_batch_inputs_count')).toBe(0);
  });
});
