// The embeddings batcher's rules against the real mock upstream over HTTP: which calls merge, when a batch is sent,
// what each request gets back (its own vectors, indexes and share of usage), and what happens on errors and departures.
import { afterAll, afterEach, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { RecallError } from '../../../src/openai/errors.js';
import type { SendWhole, WholeAnswer } from '../../../src/proxy/forward.js';
import type { UpstreamRequest } from '../../../src/upstream/client.js';
import {
  EmbeddingsBatcher, estimatedTokens, splitAnswer, type BatchTrigger, type BatcherSettings,
} from '../../../src/upstream/embeddings-batcher.js';
import type { HeaderMap } from '../../../src/upstream/headers.js';
import type { Priority } from '../../../src/upstream/priority.js';
import { closedPort, eventually } from '../../support/recall.js';

const MODEL = 'text-embedding-3-small';
/** Long enough that only a full batch, a `high` request or close() sends anything. */
const NEVER_MS = 60_000;

let mock: MockUpstream;
let batcher: EmbeddingsBatcher;
/** Priorities of the calls the batcher made, in order. */
let priorities: (Priority | undefined)[];
let triggers: BatchTrigger[];
let gathering: number;

beforeAll(async () => {
  mock = await startMockUpstream();
});
afterAll(() => mock.close());
beforeEach(() => {
  mock.reset();
  priorities = [];
  triggers = [];
  gathering = 0;
});
afterEach(() => batcher?.close());

/** The real upstream sending path's shape: one call over HTTP, its answer read whole. */
function sendTo(baseURL: string): SendWhole {
  return async (call) => {
    priorities.push(call.priority);
    const headers = Object.fromEntries(Object.entries(call.headers).map(([name, value]) => [name, Array.isArray(value) ? value.join(', ') : value]));
    const response = await fetch(`${baseURL}${call.path}`, { method: call.method, headers, body: call.body as Buffer, signal: call.signal as AbortSignal | undefined });
    const answerHeaders: HeaderMap = {};
    response.headers.forEach((value, name) => {
      answerHeaders[name] = value;
    });
    return { status: response.status, headers: answerHeaders, body: Buffer.from(await response.arrayBuffer()) };
  };
}

function start(settings: Partial<BatcherSettings> = {}, baseURL = mock.baseURL): EmbeddingsBatcher {
  batcher = new EmbeddingsBatcher(sendTo(baseURL), { windowMs: NEVER_MS, maxInputs: 256, maxTokens: 300_000, ...settings }, {
    embeddingsBatchSent: (_inputs, _requests, trigger) => void triggers.push(trigger),
    embeddingsGathering: (inputs) => void (gathering = inputs),
  });
  return batcher;
}

interface CallOptions {
  key?: string;
  priority?: Priority;
  signal?: AbortSignal;
  headers?: HeaderMap;
  fields?: Record<string, unknown>;
}

/** An upstream call as the embeddings cache makes it: its misses as an input array, base64 asked for. */
function callFor(input: (string | number[])[], options: CallOptions = {}): UpstreamRequest {
  const body = { model: MODEL, input, encoding_format: 'base64', ...options.fields };
  return {
    method: 'POST',
    path: '/embeddings',
    headers: { authorization: `Bearer ${options.key ?? 'sk-one'}`, 'content-type': 'application/json', ...options.headers },
    body: Buffer.from(JSON.stringify(body)),
    signal: options.signal,
    priority: options.priority,
  };
}

/** What the upstream answers `call` on its own. */
function alone(call: UpstreamRequest): Promise<WholeAnswer> {
  return sendTo(mock.baseURL)(call);
}

const upstreamInputs = () => mock.requests().map((request) => (JSON.parse(request.body) as { input: unknown }).input);
const text = (answer: WholeAnswer) => answer.body.toString('utf8');

describe('merging', () => {
  it('sends calls that differ only in their inputs as one, and answers each exactly as the upstream answers it alone', async () => {
    start({ windowMs: 20 });
    // Lengths that are multiples of 4 make the mock's count (4 characters a token) and the apportioned share agree.
    const calls = [callFor(['abcd']), callFor(['efghefgh', 'ijkl']), callFor(['mnopmnopmnop'])];
    const answers = await Promise.all(calls.map((call) => batcher.send(call)));
    expect(upstreamInputs()).toEqual([['abcd', 'efghefgh', 'ijkl', 'mnopmnopmnop']]);
    expect(triggers).toEqual(['window']);
    mock.reset();
    for (const [i, call] of calls.entries()) {
      const own = await alone(call);
      expect(answers[i]?.status).toBe(200);
      expect(text(answers[i] as WholeAnswer)).toBe(text(own));
    }
  });

  it('shares usage by input length, summing to what the upstream charged the batch', async () => {
    start({ windowMs: 20 });
    const inputs = ['a', 'bb bb bb', 'ccc', 'dddd dddd dddd dddd dddd'];
    const answers = await Promise.all(inputs.map((input) => batcher.send(callFor([input]))));
    const charged = (JSON.parse(text(await alone(callFor(inputs)))) as { usage: { prompt_tokens: number } }).usage.prompt_tokens;
    const shares = answers.map((answer) => (JSON.parse(text(answer)) as { usage: { prompt_tokens: number; total_tokens: number } }).usage);
    expect(shares.reduce((sum, usage) => sum + usage.prompt_tokens, 0)).toBe(charged);
    for (const usage of shares) expect(usage.total_tokens).toBe(usage.prompt_tokens);
  });

  it.each<[string, CallOptions | { input: number[][] }]>([
    ['another model', { fields: { model: 'text-embedding-3-large' } }],
    ['other dimensions', { fields: { dimensions: 8 } }],
    ['another encoding', { fields: { encoding_format: 'float' } }],
    ['another user', { fields: { user: 'someone' } }],
    ['an unknown field', { fields: { extra: true } }],
    ['another API key', { key: 'sk-two' }],
    ['an Azure api-key', { headers: { 'api-key': 'azure-key' } }],
    ['another organization', { headers: { 'openai-organization': 'org-2' } }],
    ['another project', { headers: { 'openai-project': 'proj-2' } }],
    ['token arrays instead of strings', { input: [[5, 6, 7]] }],
  ])('keeps apart a call with %s', async (_, variant) => {
    start({ windowMs: 20 });
    const other = 'input' in variant ? callFor(variant.input) : callFor(['other'], variant);
    const answers = await Promise.all([batcher.send(callFor(['base'])), batcher.send(other), batcher.send(callFor(['base too']))]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200, 200]);
    expect(upstreamInputs()).toHaveLength(2);
    expect(upstreamInputs()).toContainEqual(['base', 'base too']);
  });

  it('gives the merged call the first request\'s headers and the highest priority among its requests', async () => {
    start({ windowMs: 20 });
    await Promise.all([
      batcher.send(callFor(['one'], { headers: { 'x-client-tag': 'first' }, priority: 'low' })),
      batcher.send(callFor(['two'], { headers: { 'x-client-tag': 'second' }, priority: 'normal' })),
    ]);
    expect(mock.requests()[0]?.headers['x-client-tag']).toBe('first');
    expect(priorities).toEqual(['normal']);
  });

  it('passes on calls it cannot merge: a single input that is not an array, a body that is not JSON', async () => {
    start();
    const single = { ...callFor([]), body: Buffer.from(JSON.stringify({ model: MODEL, input: 'just one' })) };
    const notJson = { ...callFor([]), body: Buffer.from('{not json') };
    const answers = await Promise.all([batcher.send(single), batcher.send(notJson)]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 400]);
    expect(triggers).toEqual([]);
  });
});

describe('when a batch is sent', () => {
  it('a full batch goes at once', async () => {
    start({ maxInputs: 3 });
    const answers = await Promise.all([batcher.send(callFor(['a'])), batcher.send(callFor(['b', 'c']))]);
    expect(answers.map((answer) => answer.status)).toEqual([200, 200]);
    expect(triggers).toEqual(['full']);
    expect(gathering).toBe(0);
  });

  it('a call that would overflow the batch sends the batch first and starts the next', async () => {
    start({ maxInputs: 3 });
    const first = batcher.send(callFor(['a', 'b']));
    const second = batcher.send(callFor(['c', 'd']));
    await first;
    expect(gathering).toBe(2);
    batcher.close();
    await second;
    expect(upstreamInputs()).toEqual([['a', 'b'], ['c', 'd']]);
    expect(triggers).toEqual(['full', 'shutdown']);
  });

  it('counts estimated tokens against the token cap: UTF-8 bytes / 2 for text, the length of a token array', async () => {
    expect([estimatedTokens('abcd'), estimatedTokens('abc'), estimatedTokens('日本'), estimatedTokens([1, 2, 3])]).toEqual([2, 2, 3, 3]);
    start({ maxTokens: 10 });
    // 4 + 4 tokens fit; the third would make 12.
    const calls = ['abcdefgh', 'ijklmnop', 'qrstuvwx'].map((input) => batcher.send(callFor([input])));
    await Promise.all(calls.slice(0, 2));
    batcher.close();
    await calls[2];
    expect(upstreamInputs()).toEqual([['abcdefgh', 'ijklmnop'], ['qrstuvwx']]);
  });

  it('a call over the limits on its own goes as it came, at once', async () => {
    start({ maxInputs: 2 });
    const call = callFor(['a', 'b', 'c']);
    expect((await batcher.send(call)).status).toBe(200);
    expect(mock.requests()[0]?.body).toBe((call.body as Buffer).toString('utf8'));
    expect(triggers).toEqual(['oversize']);
  });

  it('a high-priority call goes at once and takes the gathered inputs along', async () => {
    start();
    const waiting = [batcher.send(callFor(['a'])), batcher.send(callFor(['b'], { priority: 'low' }))];
    expect(gathering).toBe(2);
    const urgent = await batcher.send(callFor(['c'], { priority: 'high' }));
    expect(urgent.status).toBe(200);
    expect((await Promise.all(waiting)).map((answer) => answer.status)).toEqual([200, 200]);
    expect(upstreamInputs()).toEqual([['a', 'b', 'c']]);
    expect(priorities).toEqual(['high']);
    expect(triggers).toEqual(['priority']);
  });

  it('close() sends what is gathering; later calls go straight on', async () => {
    start();
    const gathered = batcher.send(callFor(['a']));
    batcher.close();
    expect((await gathered).status).toBe(200);
    expect((await batcher.send(callFor(['b']))).status).toBe(200);
    expect(triggers).toEqual(['shutdown']);
    expect(upstreamInputs()).toEqual([['a'], ['b']]);
  });
});

describe('clients that leave', () => {
  it('a client that leaves while its batch gathers is taken out of it', async () => {
    start();
    const leaving = new AbortController();
    const left = batcher.send(callFor(['gone'], { signal: leaving.signal })).catch((caught: unknown) => caught);
    const staying = batcher.send(callFor(['stays']));
    expect(gathering).toBe(2);
    leaving.abort();
    expect(await left).toMatchObject({ kind: 'clientClosedRequest' });
    expect(gathering).toBe(1);
    batcher.close();
    expect((await staying).status).toBe(200);
    expect(upstreamInputs()).toEqual([['stays']]);
  });

  it('a batch everyone left is never sent', async () => {
    start();
    const leaving = new AbortController();
    const left = batcher.send(callFor(['gone'], { signal: leaving.signal })).catch((caught: unknown) => caught);
    leaving.abort();
    await left;
    batcher.close();
    expect(gathering).toBe(0);
    expect(triggers).toEqual([]);
    expect(mock.stats().requests).toBe(0);
  });

  it('once sent, the call goes on for the others; when all have left, it is abandoned', async () => {
    start();
    const slow = { 'x-mock-latency-ms': '300' };
    const [a, b, c] = [new AbortController(), new AbortController(), new AbortController()];
    const first = batcher.send(callFor(['a'], { signal: a.signal, headers: slow })).catch((caught: unknown) => caught);
    const second = batcher.send(callFor(['b'], { signal: b.signal, headers: slow }));
    batcher.close();
    await eventually(() => mock.stats().inFlight === 1, 'the batch reached the upstream');
    a.abort();
    expect((await second).status).toBe(200);
    await first;
    expect(mock.stats().aborted).toBe(0);

    start();
    const third = batcher.send(callFor(['c'], { signal: c.signal, headers: slow })).catch((caught: unknown) => caught);
    const fourth = new AbortController();
    const fifth = batcher.send(callFor(['d'], { signal: fourth.signal, headers: slow })).catch((caught: unknown) => caught);
    batcher.close();
    await eventually(() => mock.stats().inFlight === 1, 'the second batch reached the upstream');
    c.abort();
    fourth.abort();
    await Promise.all([third, fifth]);
    await eventually(() => mock.stats().aborted === 1, 'the upstream saw the call abandoned');
  });
});

describe('failures', () => {
  it('an upstream error reaches every request of the batch as the upstream wrote it', async () => {
    start({ windowMs: 20 });
    const fault = { 'x-mock-fault': '429' };
    const answers = await Promise.all([batcher.send(callFor(['a'], { headers: fault })), batcher.send(callFor(['b'], { headers: fault }))]);
    for (const answer of answers) {
      expect(answer.status).toBe(429);
      expect(answer.headers['retry-after']).toBe('1');
      expect(answer.headers['x-ratelimit-remaining-requests']).toBe('0');
      expect(JSON.parse(text(answer))).toMatchObject({ error: { code: 'rate_limit_exceeded' } });
    }
    expect(mock.stats().requests).toBe(1);
  });

  it('a transport failure fails every request of the batch with that error', async () => {
    start({ windowMs: 20 }, `http://127.0.0.1:${await closedPort()}/v1`);
    const outcomes = await Promise.all([batcher.send(callFor(['a'])), batcher.send(callFor(['b']))].map((p) => p.catch((caught: unknown) => caught)));
    expect(outcomes[0]).toBeInstanceOf(Error);
    expect(outcomes[1]).toBe(outcomes[0]);
  });

  it('a broken 2xx answer fails every request of the batch with upstream_broken_response', async () => {
    start({ windowMs: 20 });
    const garbage = { 'x-mock-fault': 'garbage-stream' };
    const outcomes = await Promise.all([batcher.send(callFor(['a'], { headers: garbage })), batcher.send(callFor(['b']))].map((p) => p.catch((caught: unknown) => caught)));
    for (const outcome of outcomes) {
      expect(outcome).toBeInstanceOf(RecallError);
      expect((outcome as RecallError).code).toBe('upstream_broken_response');
    }
  });

  it('a batch refused as a whole for one input is sent again request by request, so only that request fails', async () => {
    start({ windowMs: 20 });
    // The mock counts four characters a token; OpenAI refuses inputs over 8192 tokens.
    const tooLong = callFor(['x'.repeat(4 * 9000)]);
    const [fine, refused, alsoFine] = await Promise.all([batcher.send(callFor(['fine'])), batcher.send(tooLong), batcher.send(callFor(['also fine']))]);
    expect(refused.status).toBe(400);
    expect(JSON.parse(text(refused))).toMatchObject({ error: { message: expect.stringMatching(/maximum context length is 8192 tokens/) } });
    expect([fine.status, alsoFine.status]).toEqual([200, 200]);
    expect(text(fine)).toBe(text(await alone(callFor(['fine']))));
    expect(triggers).toEqual(['window', 'split', 'split', 'split']);
  });
});

describe('splitAnswer', () => {
  it('re-indexes each part from 0 and shares usage by weight, the shares summing to the whole', () => {
    const whole = Buffer.from(JSON.stringify({
      object: 'list',
      data: [2, 0, 1].map((index) => ({ object: 'embedding', index, embedding: `v${index}` })),
      model: 'm',
      usage: { prompt_tokens: 5, total_tokens: 5 },
    }));
    const parts = splitAnswer(whole, [{ weights: [1] }, { weights: [3, 1] }]).map((part) => JSON.parse(part.toString('utf8')) as unknown);
    expect(parts).toEqual([
      { object: 'list', data: [{ object: 'embedding', index: 0, embedding: 'v0' }], model: 'm', usage: { prompt_tokens: 1, total_tokens: 1 } },
      { object: 'list', data: [{ object: 'embedding', index: 0, embedding: 'v1' }, { object: 'embedding', index: 1, embedding: 'v2' }], model: 'm', usage: { prompt_tokens: 4, total_tokens: 4 } },
    ]);
  });

  it.each([
    ['not JSON', '{'],
    ['too few embeddings', JSON.stringify({ data: [{ index: 0, embedding: 'x' }] })],
    ['a repeated index', JSON.stringify({ data: [{ index: 0 }, { index: 0 }] })],
    ['an index out of range', JSON.stringify({ data: [{ index: 0 }, { index: 2 }] })],
  ])('refuses an answer with %s', (_, body) => {
    expect(() => splitAnswer(Buffer.from(body), [{ weights: [1] }, { weights: [1] }])).toThrow(/embeddings answer/);
  });
});
