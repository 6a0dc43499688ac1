// Checks that the mock upstream speaks OpenAI's wire format well enough for the official SDK, and that its faults and stats behave.

import { describe, it, expect, beforeAll, afterAll, beforeEach } from 'vitest';
import OpenAI, { type APIError } from 'openai';
import { startMockUpstream, type MockUpstream } from '../../loadtest/mock-upstream.js';

let mock: MockUpstream;
let client: OpenAI;

const question: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'user', content: 'What does a caching proxy do?' }];

beforeAll(async () => {
  mock = await startMockUpstream();
  client = new OpenAI({ baseURL: mock.baseURL, apiKey: 'sk-test', maxRetries: 0 });
});

afterAll(async () => {
  await mock.close();
});

beforeEach(() => {
  mock.reset();
});

/** Polls instead of sleeping a fixed time: the abort reaches the server asynchronously. */
async function waitFor(condition: () => boolean, attempts = 200): Promise<void> {
  for (let i = 0; i < attempts && !condition(); i++) await new Promise((resolve) => setTimeout(resolve, 10));
}

describe('chat completions', () => {
  it('answers with a deterministic chat.completion', async () => {
    const first = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question });
    const second = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question });

    expect(first.object).toBe('chat.completion');
    expect(first.id).toMatch(/^chatcmpl-/);
    expect(first.model).toBe('gpt-4o-mini');
    expect(first.system_fingerprint).toBe('fp_mock');
    expect(first.choices).toHaveLength(1);
    expect(first.choices[0]?.message.role).toBe('assistant');
    expect(first.choices[0]?.message.content).toMatch(/^Mock answer [0-9a-f]{8}: \w+/);
    expect(first.choices[0]?.finish_reason).toBe('stop');
    expect(first.usage?.prompt_tokens).toBeGreaterThan(0);
    expect(first.usage?.total_tokens).toBe((first.usage?.prompt_tokens ?? 0) + (first.usage?.completion_tokens ?? 0));
    expect(second).toEqual(first);

    const other = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'Something else' }] });
    expect(other.choices[0]?.message.content).not.toBe(first.choices[0]?.message.content);
  });

  it('honours n and max_tokens', async () => {
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question, n: 3, max_tokens: 5 });

    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2]);
    const contents = completion.choices.map((choice) => choice.message.content ?? '');
    expect(new Set(contents).size).toBe(3);
    for (const content of contents) expect(content.split(' ')).toHaveLength(5);
    expect(completion.choices.every((choice) => choice.finish_reason === 'length')).toBe(true);
    expect(completion.usage?.completion_tokens).toBe(15);
  });

  it('streams chunks with usage that reassemble into the answer', async () => {
    const stream = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: question,
      stream: true,
      stream_options: { include_usage: true },
    });
    const chunks: OpenAI.Chat.ChatCompletionChunk[] = [];
    for await (const chunk of stream) chunks.push(chunk);

    expect(chunks.length).toBeGreaterThan(4);
    expect(new Set(chunks.map((chunk) => chunk.id)).size).toBe(1);
    expect(chunks.every((chunk) => chunk.object === 'chat.completion.chunk' && chunk.system_fingerprint === 'fp_mock')).toBe(true);
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: '', refusal: null });

    const last = chunks[chunks.length - 1];
    expect(last?.choices).toEqual([]);
    expect(last?.usage?.completion_tokens).toBeGreaterThan(0);
    expect(chunks.slice(0, -1).every((chunk) => chunk.usage === null)).toBe(true);
    expect(chunks[chunks.length - 2]?.choices[0]?.finish_reason).toBe('stop');

    const streamed = chunks.map((chunk) => chunk.choices[0]?.delta.content ?? '').join('');
    expect(streamed).toMatch(/^Mock answer [0-9a-f]{8}: /);
    expect(streamed.split(' ')).toHaveLength(last?.usage?.completion_tokens ?? -1);
  });

  it('calls the first tool when tools are offered', async () => {
    const tools: OpenAI.Chat.ChatCompletionTool[] = [
      {
        type: 'function',
        function: {
          name: 'get_weather',
          parameters: { type: 'object', properties: { city: { type: 'string' }, unit: { type: 'string', enum: ['celsius', 'fahrenheit'] } } },
        },
      },
      { type: 'function', function: { name: 'get_time', parameters: { type: 'object', properties: {} } } },
    ];
    const completion = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question, tools });

    const choice = completion.choices[0];
    expect(choice?.finish_reason).toBe('tool_calls');
    expect(choice?.message.content).toBeNull();
    const call = choice?.message.tool_calls?.[0];
    expect(call?.id).toMatch(/^call_/);
    expect(call?.type).toBe('function');
    if (call?.type !== 'function') throw new Error('expected a function tool call');
    expect(call.function.name).toBe('get_weather');
    const args: unknown = JSON.parse(call.function.arguments);
    expect(args).toMatchObject({ city: expect.any(String), unit: expect.stringMatching(/^(celsius|fahrenheit)$/) });

    // The streamed tool call carries the same name and arguments, split into fragments.
    const stream = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question, tools, stream: true });
    let name = '';
    let streamedArgs = '';
    let fragments = 0;
    for await (const chunk of stream) {
      for (const delta of chunk.choices[0]?.delta.tool_calls ?? []) {
        name += delta.function?.name ?? '';
        streamedArgs += delta.function?.arguments ?? '';
        fragments++;
      }
    }
    expect(name).toBe('get_weather');
    expect(JSON.parse(streamedArgs)).toMatchObject({ city: expect.any(String) });
    expect(fragments).toBeGreaterThan(2);

    const forced = await client.chat.completions.create({
      model: 'gpt-4o-mini',
      messages: question,
      tools,
      tool_choice: { type: 'function', function: { name: 'get_time' } },
    });
    const forcedCall = forced.choices[0]?.message.tool_calls?.[0];
    expect(forcedCall?.type === 'function' ? forcedCall.function.name : undefined).toBe('get_time');

    const declined = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question, tools, tool_choice: 'none' });
    expect(declined.choices[0]?.message.tool_calls).toBeUndefined();
    expect(declined.choices[0]?.finish_reason).toBe('stop');
  });

  it('rejects a request without a model in OpenAI error shape', async () => {
    const response = await fetch(`${mock.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ messages: question }),
    });
    expect(response.status).toBe(400);
    expect(await response.json()).toMatchObject({ error: { type: 'invalid_request_error', param: 'model' } });

    const invalidJson = await fetch(`${mock.baseURL}/chat/completions`, { method: 'POST', body: '{not json' });
    expect(invalidJson.status).toBe(400);
  });
});

describe('legacy completions', () => {
  it('answers one choice per prompt and n', async () => {
    const completion = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: ['one', 'two'], n: 2 });

    expect(completion.object).toBe('text_completion');
    expect(completion.id).toMatch(/^cmpl-/);
    expect(completion.choices.map((choice) => choice.index)).toEqual([0, 1, 2, 3]);
    expect(new Set(completion.choices.map((choice) => choice.text)).size).toBe(4);
    expect(completion.usage?.completion_tokens).toBeGreaterThan(0);

    const stream = await client.completions.create({ model: 'gpt-3.5-turbo-instruct', prompt: 'one', stream: true });
    let text = '';
    let finishReason: string | null = null;
    for await (const chunk of stream) {
      text += chunk.choices[0]?.text ?? '';
      finishReason = chunk.choices[0]?.finish_reason ?? finishReason;
    }
    expect(text).toMatch(/^Mock completion [0-9a-f]{8}: /);
    expect(finishReason).toBe('stop');
  });
});

describe('embeddings', () => {
  it('returns the same unit vector as float and as the SDK-decoded base64 default', async () => {
    const asFloat = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'], dimensions: 32, encoding_format: 'float' });
    const asDefault = await client.embeddings.create({ model: 'text-embedding-3-small', input: ['hello', 'world'], dimensions: 32 });

    // The SDK asks for base64 when no format is given; the mock must honour that for the decoding to yield numbers.
    const recorded = mock.requests().map((request) => JSON.parse(request.body) as { encoding_format?: string });
    expect(recorded.map((body) => body.encoding_format)).toEqual(['float', 'base64']);

    expect(asFloat.object).toBe('list');
    expect(asFloat.data).toHaveLength(2);
    const vector = asFloat.data[0]?.embedding ?? [];
    expect(vector).toHaveLength(32);
    expect(Math.hypot(...vector)).toBeCloseTo(1, 5);
    expect(asDefault.data[0]?.embedding).toEqual(vector);
    expect(asDefault.data[1]?.embedding).toEqual(asFloat.data[1]?.embedding);
    expect(asFloat.data[1]?.embedding).not.toEqual(vector);
    expect(asFloat.usage.prompt_tokens).toBeGreaterThan(0);

    const defaultDimensions = await client.embeddings.create({ model: 'text-embedding-3-small', input: 'hello' });
    expect(defaultDimensions.data[0]?.embedding).toHaveLength(16);
  });

  it("refuses what OpenAI refuses: over 2048 inputs, an input over 8192 tokens, over 300,000 tokens in all", async () => {
    const refusal = (input: string[]) =>
      client.embeddings.create({ model: 'text-embedding-3-small', input }).then(
        () => { throw new Error('the mock accepted what OpenAI refuses'); },
        (caught: unknown) => caught as APIError,
      );
    const tooMany = await refusal(Array.from({ length: 2049 }, (_, i) => `item ${i}`));
    expect(tooMany.status).toBe(400);
    expect(tooMany.param).toBe('input');
    // The mock counts four characters per token.
    const tooLong = await refusal(['short', 'x'.repeat(4 * 8192 + 4)]);
    expect(tooLong.status).toBe(400);
    expect(tooLong.message).toMatch(/maximum context length is 8192 tokens, however you requested 8193 tokens/);
    const tooMuch = await refusal(Array.from({ length: 40 }, () => 'y'.repeat(4 * 8000)));
    expect(tooMuch.status).toBe(400);
    expect(tooMuch.code).toBe('max_tokens_per_request');
    const justFits = await client.embeddings.create({ model: 'text-embedding-3-small', input: Array.from({ length: 2048 }, (_, i) => `item ${i}`) });
    expect(justFits.data).toHaveLength(2048);
  });

  it('rejects empty input with 400', async () => {
    const error = await client.embeddings.create({ model: 'text-embedding-3-small', input: [] }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as APIError).status).toBe(400);
    expect((error as APIError).param).toBe('input');
  });
});

describe('models and unknown routes', () => {
  it('lists models and returns one or a 404', async () => {
    const ids: string[] = [];
    for await (const model of client.models.list()) ids.push(model.id);
    expect(ids).toEqual(expect.arrayContaining(['gpt-4o-mini', 'gpt-4o', 'text-embedding-3-small', 'gpt-3.5-turbo-instruct']));

    const model = await client.models.retrieve('gpt-4o');
    expect(model).toMatchObject({ id: 'gpt-4o', object: 'model' });

    const missing = await client.models.retrieve('no-such-model').catch((caught: unknown) => caught);
    expect(missing).toBeInstanceOf(OpenAI.NotFoundError);
  });

  it('answers unknown paths with OpenAI-shaped 404', async () => {
    const response = await fetch(`${mock.baseURL}/nothing?x=1`, { method: 'POST' });
    expect(response.status).toBe(404);
    expect(await response.json()).toEqual({
      error: { message: 'Invalid URL (POST /v1/nothing)', type: 'invalid_request_error', param: null, code: null },
    });
  });
});

describe('faults', () => {
  it('surfaces a 429 fault as an APIError with rate-limit headers', async () => {
    mock.failNext('429');
    const error = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question }).catch((caught: unknown) => caught);

    expect(error).toBeInstanceOf(OpenAI.APIError);
    const apiError = error as APIError;
    expect(apiError.status).toBe(429);
    expect(apiError.code).toBe('rate_limit_exceeded');
    expect(apiError.headers?.get('retry-after')).toBe('1');
    expect(apiError.headers?.get('x-ratelimit-remaining-requests')).toBe('0');

    // The queued fault was used up, so the next request succeeds.
    await expect(client.chat.completions.create({ model: 'gpt-4o-mini', messages: question })).resolves.toMatchObject({ object: 'chat.completion' });
  });

  it('applies a fault named in the x-mock-fault header', async () => {
    const error = await client.models.list({ headers: { 'x-mock-fault': '503' } }).catch((caught: unknown) => caught);
    expect(error).toBeInstanceOf(OpenAI.APIError);
    expect((error as APIError).status).toBe(503);
  });

  it('answers 502 and 504 faults in the error shape, and sets Retry-After from x-mock-retry-after', async () => {
    for (const status of [502, 504]) {
      const response = await fetch(`${mock.baseURL}/models`, { headers: { 'x-mock-fault': String(status), 'x-mock-retry-after': '7' } });
      expect(response.status).toBe(status);
      expect(response.headers.get('retry-after')).toBe('7');
      expect(((await response.json()) as { error: { type: string } }).error.type).toBe('server_error');
    }
    const limited = await fetch(`${mock.baseURL}/models`, { headers: { 'x-mock-fault': '429', 'x-mock-retry-after': '120' } });
    expect(limited.headers.get('retry-after')).toBe('120');
    expect(limited.headers.get('x-ratelimit-remaining-requests')).toBe('0');
    const plain = await fetch(`${mock.baseURL}/models`, { headers: { 'x-mock-retry-after': '7' } });
    expect(plain.status).toBe(200);
    expect(plain.headers.get('retry-after')).toBeNull();
  });

  it('queues faults through the control route', async () => {
    const queued = await fetch(`${mock.url}/mock/fail-next`, { method: 'POST', body: JSON.stringify({ fault: '500', count: 2 }) });
    expect(queued.status).toBe(200);

    const statuses: number[] = [];
    for (let i = 0; i < 3; i++) statuses.push((await fetch(`${mock.baseURL}/models`)).status);
    expect(statuses).toEqual([500, 500, 200]);
  });

  it('breaks, garbles or truncates streams on request', async () => {
    const streamOf = (fault: string) =>
      client.chat.completions.create({ model: 'gpt-4o-mini', messages: question, stream: true }, { headers: { 'x-mock-fault': fault } });
    const drain = async (fault: string): Promise<unknown> => {
      try {
        for await (const chunk of await streamOf(fault)) void chunk;
        return 'completed';
      } catch (caught) {
        return caught;
      }
    };

    expect(await drain('broken-stream')).toBeInstanceOf(Error);
    expect(await drain('garbage-stream')).toBeInstanceOf(Error);

    const noDone = await fetch(`${mock.baseURL}/chat/completions`, {
      method: 'POST',
      headers: { 'x-mock-fault': 'no-done' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: question, stream: true }),
    });
    const body = await noDone.text();
    expect(body).toContain('"finish_reason":"stop"');
    expect(body).not.toContain('[DONE]');

    // The mock cut these connections itself; that is not a client abort.
    expect(mock.stats().aborted).toBe(0);
  });

  it('sends OpenAI\'s mid-stream error event, a stream in 5-byte pieces, or a 401 on request', async () => {
    const streamed = async (fault?: string) => {
      const response = await fetch(`${mock.baseURL}/chat/completions`, {
        method: 'POST', headers: fault === undefined ? {} : { 'x-mock-fault': fault }, body: JSON.stringify({ model: 'gpt-4o-mini', messages: question, stream: true }),
      });
      const pieces: number[] = [];
      let text = '';
      const decoder = new TextDecoder();
      for await (const piece of response.body as unknown as AsyncIterable<Uint8Array>) {
        pieces.push(piece.length);
        text += decoder.decode(piece, { stream: true });
      }
      return { pieces, text };
    };
    const errorEvent = await streamed('error-event');
    expect(errorEvent.text.trim().split('\n\n').at(-1)).toBe('data: {"error":{"message":"The server had an error while processing your request.","type":"server_error","param":null,"code":null}}');
    const split = await streamed('split-stream');
    const whole = await streamed();
    expect(split.text).toBe(whole.text);
    // Written 5 bytes at a time, 1 ms apart; TCP may merge some writes before the reader sees them (it did under a
    // loaded CI run: a 10-byte piece), so the reader can only count on many pieces, not on their exact size.
    expect(split.pieces.length).toBeGreaterThan(whole.pieces.length);
    expect(split.pieces.length).toBeGreaterThan(split.text.length / 50);

    const unauthorized = await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question }, { headers: { 'x-mock-fault': '401' } }).catch((e: unknown) => e);
    expect(unauthorized).toBeInstanceOf(OpenAI.AuthenticationError);
    expect((unauthorized as InstanceType<typeof OpenAI.APIError>).code).toBe('invalid_api_key');
  });
});

describe('random faults', () => {
  /** The statuses of `count` sequential /v1/models calls (a stall is cut short by the client after 1 s: 'stall'). */
  async function statuses(target: MockUpstream, count: number): Promise<(number | 'stall')[]> {
    const seen: (number | 'stall')[] = [];
    for (let i = 0; i < count; i++) {
      try {
        const response = await fetch(`${target.baseURL}/models`, { signal: AbortSignal.timeout(1_000) });
        if (response.status !== 200) expect(response.headers.get('x-mock-fault')).toBe(String(response.status));
        await response.arrayBuffer();
        seen.push(response.status);
      } catch {
        seen.push('stall');
      }
    }
    return seen;
  }

  it('fails requests at the configured rates, marks each error it sends, counts them, and repeats its draws from the seed', async () => {
    const faulty = await startMockUpstream({ faultRates: { '503': 0.2, '500': 0.1, stall: 0.02 }, faultSeed: 42 });
    const twin = await startMockUpstream({ faultRates: { '503': 0.2, '500': 0.1, stall: 0.02 }, faultSeed: 42 });
    try {
      const [seen, twinSeen] = await Promise.all([statuses(faulty, 200), statuses(twin, 200)]);
      const count = (what: number | 'stall') => seen.filter((s) => s === what).length;
      // 40, 20 and 10 expected; the seed fixes the draws, the range only says the rates are applied at all.
      expect(count(503)).toBeGreaterThan(20);
      expect(count(503)).toBeLessThan(60);
      expect(count(500)).toBeGreaterThan(5);
      expect(count(500)).toBeLessThan(35);
      expect(count('stall')).toBeGreaterThan(0);
      expect(count(200) + count(503) + count(500) + count('stall')).toBe(200);
      expect(faulty.stats().faults).toEqual({ '503': count(503), '500': count(500), stall: count('stall') });

      // The same seed draws the same sequence, and reset starts it over.
      expect(twinSeen).toEqual(seen);
      faulty.reset();
      expect(faulty.stats().faults).toEqual({});
      expect(await statuses(faulty, 50)).toEqual(seen.slice(0, 50));
    } finally {
      await faulty.close();
      await twin.close();
    }
  }, 30_000);

  it('counts queued and header faults too', async () => {
    mock.failNext('502');
    await fetch(`${mock.baseURL}/models`);
    await fetch(`${mock.baseURL}/models`, { headers: { 'x-mock-fault': '429' } });
    expect(mock.stats().faults).toEqual({ '502': 1, '429': 1 });
  });

  it('refuses fault rates it cannot apply', async () => {
    await expect(startMockUpstream({ faultRates: { '503': 0.7, '500': 0.4 } })).rejects.toThrow(/more than 1/);
    await expect(startMockUpstream({ faultRates: { teapot: 0.1 } as never })).rejects.toThrow(/unknown fault teapot/);
    await expect(startMockUpstream({ faultRates: { '503': -0.1 } })).rejects.toThrow(/>= 0/);
  });
});

describe('stats', () => {
  it('counts requests per route, leaving control routes out', async () => {
    await client.models.list();
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question });
    await client.chat.completions.create({ model: 'gpt-4o-mini', messages: question });
    await fetch(`${mock.url}/mock/stats`);

    const stats = mock.stats();
    expect(stats.requests).toBe(3);
    expect(stats.byRoute).toEqual({ 'GET /v1/models': 1, 'POST /v1/chat/completions': 2 });
    expect(stats.inFlight).toBe(0);
    expect(mock.requests()).toHaveLength(3);
    expect(mock.requests()[0]).toMatchObject({ method: 'GET', path: '/v1/models', body: '' });

    const overHttp: unknown = await (await fetch(`${mock.url}/mock/stats`)).json();
    expect(overHttp).toEqual(stats);
  });

  it('counts a stream aborted by the client', async () => {
    const controller = new AbortController();
    // A long chunk delay keeps the stream unfinished when the client walks away after its first chunk.
    const stream = await client.chat.completions.create(
      { model: 'gpt-4o-mini', messages: question, stream: true },
      { signal: controller.signal, headers: { 'x-mock-chunk-delay-ms': '200' } },
    );
    const received: OpenAI.Chat.ChatCompletionChunk[] = [];
    try {
      for await (const chunk of stream) {
        received.push(chunk);
        controller.abort();
      }
    } catch (caught) {
      expect(caught).toBeInstanceOf(Error);
    }

    await waitFor(() => mock.stats().aborted === 1);
    expect(received.length).toBeGreaterThan(0);
    expect(mock.stats()).toMatchObject({ aborted: 1, inFlight: 0 });
  });

  it('with maxConcurrent, keeps later requests waiting their turn in arrival order', async () => {
    const capped = await startMockUpstream({ maxConcurrent: 2 });
    try {
      const sdk = new OpenAI({ baseURL: capped.baseURL, apiKey: 'sk-test', maxRetries: 0 });
      const stalled = [1, 2].map(() => fetch(`${capped.baseURL}/models`, { headers: { 'x-mock-fault': 'stall' } }).catch((caught: unknown) => caught));
      await waitFor(() => capped.stats().inFlight === 2);
      const waiting = sdk.embeddings.create({ model: 'text-embedding-3-small', input: 'waits' });
      await waitFor(() => capped.stats().waiting === 1);
      expect(capped.stats()).toMatchObject({ inFlight: 3, waiting: 1, peakInProgress: 2 });
      // A stalled request never ends by itself; closing both of its sockets frees the turns.
      await capped.close();
      await expect(waiting).rejects.toThrow();
      await Promise.all(stalled);
    } finally {
      await capped.close();
    }
  });

  it('with maxConcurrent, answers every request once a turn is free', async () => {
    const capped = await startMockUpstream({ maxConcurrent: 3, latencyMs: 5 });
    try {
      const sdk = new OpenAI({ baseURL: capped.baseURL, apiKey: 'sk-test', maxRetries: 0 });
      const answers = await Promise.all(Array.from({ length: 12 }, (_, i) => sdk.embeddings.create({ model: 'text-embedding-3-small', input: `turn ${i}` })));
      expect(answers.map((answer) => answer.data.length)).toEqual(Array(12).fill(1));
      expect(capped.stats()).toMatchObject({ requests: 12, inFlight: 0, waiting: 0, peakInProgress: 3 });
    } finally {
      await capped.close();
    }
  });

  it('closes with a stalled request in flight', async () => {
    const other = await startMockUpstream();
    const stalled = fetch(`${other.baseURL}/models`, { headers: { 'x-mock-fault': 'stall' } }).catch((caught: unknown) => caught);
    await waitFor(() => other.stats().inFlight === 1);
    expect(other.stats().inFlight).toBe(1);

    await other.close();
    expect(await stalled).toBeInstanceOf(Error);
    expect(other.stats().inFlight).toBe(0);
  });
});
