import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { Stream } from 'openai/core/streaming';
import type { ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { Completion } from 'openai/resources/completions';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { StreamAssembler, type CompletionRoute } from '../../../src/openai/assemble.js';

const HEAD = '"id":"chatcmpl-9tXjp","object":"chat.completion.chunk","created":1723024757,"model":"gpt-4o-2024-08-06","system_fingerprint":"fp_2a322c9ffc"';

/** One chat chunk event for choice `index`, as OpenAI writes it. */
function chatEvent(index: number, delta: object, finishReason: string | null = null, logprobs: object | null = null): string {
  return `data: {${HEAD},"choices":[${JSON.stringify({ index, delta, logprobs, finish_reason: finishReason })}]}\n\n`;
}

const USAGE = { prompt_tokens: 149, completion_tokens: 60, total_tokens: 209 };
const USAGE_EVENT = `data: {${HEAD},"choices":[],"usage":${JSON.stringify(USAGE)}}\n\n`;
const DONE = 'data: [DONE]\n\n';

/** OpenAI's parallel tool calls, as recorded from the live API: the role comes alone, each call opens its own chunk. */
const PARALLEL_TOOL_CALLS = [
  chatEvent(0, { role: 'assistant', content: null }),
  chatEvent(0, { tool_calls: [{ index: 0, id: 'call_lQnn', type: 'function', function: { name: 'GetWeatherArgs', arguments: '' } }] }),
  chatEvent(0, { tool_calls: [{ index: 0, function: { arguments: '{"ci' } }] }),
  chatEvent(0, { tool_calls: [{ index: 0, function: { arguments: 'ty": "Edinburgh"}' } }] }),
  chatEvent(0, { tool_calls: [{ index: 1, id: 'call_2xjO', type: 'function', function: { name: 'get_stock_price', arguments: '' } }] }),
  chatEvent(0, { tool_calls: [{ index: 1, function: { arguments: '{"ticker": "AAPL"}' } }] }),
  chatEvent(0, {}, 'tool_calls'),
  USAGE_EVENT,
  DONE,
].join('');

function assembleText(route: CompletionRoute, body: string): StreamAssembler {
  const assembler = new StreamAssembler(route);
  assembler.push(Buffer.from(body));
  return assembler;
}

function textChat(content: string): string {
  return chatEvent(0, { role: 'assistant', content: '', refusal: null }) + chatEvent(0, { content }) + chatEvent(0, {}, 'stop') + DONE;
}

describe('StreamAssembler (chat)', () => {
  it('merges parallel tool calls by index into the non-streaming message', () => {
    const assembler = assembleText('chat.completions', PARALLEL_TOOL_CALLS);
    expect(assembler.done).toBe(true);
    expect(assembler.failed).toBe(false);
    expect(assembler.result()).toEqual({
      id: 'chatcmpl-9tXjp',
      object: 'chat.completion',
      created: 1723024757,
      model: 'gpt-4o-2024-08-06',
      choices: [
        {
          index: 0,
          message: {
            role: 'assistant',
            content: null,
            refusal: null,
            tool_calls: [
              { id: 'call_lQnn', type: 'function', function: { name: 'GetWeatherArgs', arguments: '{"city": "Edinburgh"}' } },
              { id: 'call_2xjO', type: 'function', function: { name: 'get_stock_price', arguments: '{"ticker": "AAPL"}' } },
            ],
          },
          logprobs: null,
          finish_reason: 'tool_calls',
        },
      ],
      usage: USAGE,
      system_fingerprint: 'fp_2a322c9ffc',
    });
  });

  it('concatenates content and refusal, and keeps logprobs arrays in order', () => {
    const token = (text: string) => ({ token: text, logprob: -0.5, bytes: [...Buffer.from(text)], top_logprobs: [] });
    const body =
      chatEvent(0, { role: 'assistant', content: '', refusal: null }, null, { content: [], refusal: null }) +
      chatEvent(0, { content: 'Foo' }, null, { content: [token('Foo')], refusal: null }) +
      chatEvent(0, { content: ' bär' }, null, { content: [token(' bär')], refusal: null }) +
      chatEvent(1, { role: 'assistant', content: null, refusal: '' }) +
      chatEvent(1, { refusal: "I can't" }) +
      chatEvent(1, { refusal: ' help.' }) +
      chatEvent(0, {}, 'stop') +
      chatEvent(1, {}, 'stop') +
      DONE;
    const choices = assembleText('chat.completions', body).result()?.choices;
    expect(choices).toEqual([
      {
        index: 0,
        message: { role: 'assistant', content: 'Foo bär', refusal: null },
        logprobs: { content: [token('Foo'), token(' bär')], refusal: null },
        finish_reason: 'stop',
      },
      { index: 1, message: { role: 'assistant', content: null, refusal: "I can't help." }, logprobs: null, finish_reason: 'stop' },
    ]);
  });

  it('sorts choices by index whatever order they arrive in', () => {
    const body =
      chatEvent(1, { role: 'assistant', content: 'second' }) + chatEvent(0, { role: 'assistant', content: 'first' }) + chatEvent(1, {}, 'length') + chatEvent(0, {}, 'stop') + DONE;
    const choices = assembleText('chat.completions', body).result()?.choices as { index: number; message: { content: string } }[];
    expect(choices.map((choice) => [choice.index, choice.message.content])).toEqual([
      [0, 'first'],
      [1, 'second'],
    ]);
  });

  it('merges a legacy function_call', () => {
    const body =
      chatEvent(0, { role: 'assistant', content: null, function_call: { name: 'get_weather', arguments: '' } }) +
      chatEvent(0, { function_call: { arguments: '{"location":' } }) +
      chatEvent(0, { function_call: { arguments: '"Boston"}' } }) +
      chatEvent(0, {}, 'function_call') +
      DONE;
    const message = (assembleText('chat.completions', body).result()?.choices as { message: unknown }[])[0]?.message;
    expect(message).toEqual({ role: 'assistant', content: null, refusal: null, function_call: { name: 'get_weather', arguments: '{"location":"Boston"}' } });
  });

  it('takes service_tier and a null system_fingerprint from the chunks, and leaves out usage that was never sent', () => {
    const head = '"id":"c1","object":"chat.completion.chunk","created":1,"model":"m","service_tier":"default","system_fingerprint":null';
    const body =
      `data: {${head},"choices":[{"index":0,"delta":{"role":"assistant","content":"hi"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
      `data: {${head},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n` +
      DONE;
    const result = assembleText('chat.completions', body).result();
    expect(result).toMatchObject({ id: 'c1', service_tier: 'default', system_fingerprint: null });
    expect(result).not.toHaveProperty('usage');
  });

  it('follows the SSE grammar: comments, event lines, CRLF, multi-line data joined with a newline, no space after the colon', () => {
    const body =
      ': OPENROUTER PROCESSING\r\n\r\n' +
      'event: message\r\n' +
      `data: {${HEAD},\r\n` +
      'data: "choices":[{"index":0,"delta":{"role":"assistant","content":"a\\nb"},"logprobs":null,"finish_reason":null}]}\r\n' +
      'id: 7\r\nretry: 1000\r\n\r\n' +
      `data:{${HEAD},"choices":[{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}]}\n\n` +
      'data: [DONE]\n\n';
    const assembler = assembleText('chat.completions', body);
    expect(assembler.failed).toBe(false);
    expect((assembler.result()?.choices as { message: { content: string } }[])[0]?.message.content).toBe('a\nb');
  });

  it('is not disturbed when the caller reuses its buffer after push', () => {
    const bytes = Buffer.from(textChat('reused buffers are fine'));
    const assembler = new StreamAssembler('chat.completions');
    const scratch = Buffer.alloc(3);
    for (let at = 0; at < bytes.length; at += scratch.length) {
      const length = bytes.copy(scratch, 0, at, at + scratch.length);
      assembler.push(scratch.subarray(0, length));
      scratch.fill(0x41);
    }
    expect((assembler.result()?.choices as { message: { content: string } }[])[0]?.message.content).toBe('reused buffers are fine');
  });

  it('ignores anything after [DONE]', () => {
    const assembler = assembleText('chat.completions', textChat('done') + 'data: {not json\n\n');
    expect(assembler.failed).toBe(false);
    expect(assembler.result()).toBeDefined();
  });

  describe('never yields an incomplete answer', () => {
    it('without [DONE]', () => {
      const assembler = assembleText('chat.completions', PARALLEL_TOOL_CALLS.replace(DONE, ''));
      expect(assembler.done).toBe(false);
      expect(assembler.failed).toBe(false);
      expect(assembler.result()).toBeUndefined();
    });

    it('when [DONE] has not been closed by its blank line', () => {
      const assembler = assembleText('chat.completions', PARALLEL_TOOL_CALLS.replace(DONE, 'data: [DONE]\n'));
      expect(assembler.result()).toBeUndefined();
    });

    it('when a choice has no finish_reason', () => {
      const body = chatEvent(0, { role: 'assistant', content: 'a' }) + chatEvent(1, { role: 'assistant', content: 'b' }) + chatEvent(0, {}, 'stop') + DONE;
      const assembler = assembleText('chat.completions', body);
      expect(assembler.done).toBe(true);
      expect(assembler.result()).toBeUndefined();
    });

    it('when a choice index is missing', () => {
      const body = chatEvent(0, { role: 'assistant', content: 'a' }, 'stop') + chatEvent(2, { role: 'assistant', content: 'c' }, 'stop') + DONE;
      expect(assembleText('chat.completions', body).result()).toBeUndefined();
    });

    it('when there were no choices at all', () => {
      expect(assembleText('chat.completions', USAGE_EVENT + DONE).result()).toBeUndefined();
    });

    it('when a tool call never got its id', () => {
      const body = chatEvent(0, { role: 'assistant', content: null, tool_calls: [{ index: 0, type: 'function', function: { name: 'f', arguments: '{}' } }] }, 'tool_calls') + DONE;
      expect(assembleText('chat.completions', body).result()).toBeUndefined();
    });

    it('when a delta carries a field it cannot reproduce (audio), without calling the stream invalid', () => {
      const body = chatEvent(0, { role: 'assistant', content: null, audio: { id: 'audio_1', data: 'UklGR', transcript: 'hi' } }, 'stop') + DONE;
      const assembler = assembleText('chat.completions', body);
      expect(assembler.failed).toBe(false);
      expect(assembler.result()).toBeUndefined();
    });
  });

  describe('marks a stream failed', () => {
    it.each([
      ['unparsable data', 'data: {not json\n\n'],
      ['an error object', 'data: {"error":{"message":"The server had an error","type":"server_error","param":null,"code":null}}\n\n'],
      ['an event named error', 'event: error\ndata: {"message":"overloaded"}\n\n'],
      ['a chunk of another object type', 'data: {"id":"cmpl-1","object":"text_completion","created":1,"model":"m","choices":[{"text":"x","index":0,"logprobs":null,"finish_reason":"stop"}]}\n\n'],
      ['a chunk without a choices array', `data: {${HEAD}}\n\n`],
      ['a choice without an index', `data: {${HEAD},"choices":[{"delta":{"content":"x"},"finish_reason":"stop"}]}\n\n`],
    ])('on %s, even if the stream then finishes normally', (_name, badEvent) => {
      const body = chatEvent(0, { role: 'assistant', content: 'ok' }) + badEvent + chatEvent(0, {}, 'stop') + DONE;
      const assembler = assembleText('chat.completions', body);
      expect(assembler.failed).toBe(true);
      expect(assembler.result()).toBeUndefined();
    });
  });
});

describe('StreamAssembler (completions)', () => {
  const head = '"id":"cmpl-1","object":"text_completion","created":1692901427,"model":"gpt-3.5-turbo-instruct"';
  const event = (choice: object) => `data: {${head},"choices":[${JSON.stringify(choice)}]}\n\n`;

  it('concatenates text and logprobs per index', () => {
    const body =
      event({ text: ' Hello', index: 0, logprobs: { tokens: [' Hello'], token_logprobs: [-0.5], top_logprobs: null, text_offset: [3] }, finish_reason: null }) +
      event({ text: 'B', index: 1, logprobs: null, finish_reason: null }) +
      event({ text: ' wörld', index: 0, logprobs: { tokens: [' wörld'], token_logprobs: [-1], top_logprobs: null, text_offset: [9] }, finish_reason: null }) +
      event({ text: '', index: 0, logprobs: null, finish_reason: 'length' }) +
      event({ text: '', index: 1, logprobs: null, finish_reason: 'stop' }) +
      DONE;
    expect(assembleText('completions', body).result()).toEqual({
      id: 'cmpl-1',
      object: 'text_completion',
      created: 1692901427,
      model: 'gpt-3.5-turbo-instruct',
      choices: [
        { text: ' Hello wörld', index: 0, logprobs: { tokens: [' Hello', ' wörld'], token_logprobs: [-0.5, -1], top_logprobs: null, text_offset: [3, 9] }, finish_reason: 'length' },
        { text: 'B', index: 1, logprobs: null, finish_reason: 'stop' },
      ],
    });
  });

  it('rejects chat chunks on the completions route', () => {
    const assembler = assembleText('completions', textChat('wrong route'));
    expect(assembler.failed).toBe(true);
    expect(assembler.result()).toBeUndefined();
  });
});

describe('StreamAssembler against the mock upstream', () => {
  let upstream: MockUpstream;
  beforeAll(async () => {
    upstream = await startMockUpstream();
  });
  afterAll(async () => {
    await upstream.close();
  });

  /** Streams a request, feeding the assembler each network read as it arrives; returns the raw bytes too. */
  async function streamThrough(path: string, body: object, headers: Record<string, string> = {}): Promise<{ assembler: StreamAssembler; raw: Buffer }> {
    const response = await fetch(`${upstream.baseURL}${path}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', ...headers },
      body: JSON.stringify({ ...body, stream: true }),
    });
    expect(response.status).toBe(200);
    const assembler = new StreamAssembler(path === '/chat/completions' ? 'chat.completions' : 'completions');
    const reads: Buffer[] = [];
    for await (const read of response.body as ReadableStream<Uint8Array>) {
      const bytes = Buffer.from(read.buffer, read.byteOffset, read.byteLength);
      reads.push(Buffer.from(bytes));
      assembler.push(bytes);
    }
    return { assembler, raw: Buffer.concat(reads) };
  }

  /** The same bytes read the way a client does, with the SDK's parser. */
  async function sdkChunks<T>(raw: Buffer): Promise<T[]> {
    const chunks: T[] = [];
    for await (const chunk of Stream.fromSSEResponse<T>(new Response(raw), new AbortController())) chunks.push(chunk);
    return chunks;
  }

  it('assembles a chat stream with n=2 into the concatenated deltas, with usage when include_usage was set', async () => {
    const { assembler, raw } = await streamThrough('/chat/completions', {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'assemble me' }],
      n: 2,
      stream_options: { include_usage: true },
    });
    const chunks = await sdkChunks<ChatCompletionChunk>(raw);
    const contents = ['', ''];
    for (const chunk of chunks) for (const choice of chunk.choices) contents[choice.index] += choice.delta.content ?? '';
    const usage = chunks.find((chunk) => chunk.choices.length === 0)?.usage;
    expect(usage).toBeDefined();

    const result = assembler.result();
    expect(result).toMatchObject({ object: 'chat.completion', id: chunks[0]?.id, model: 'gpt-4o-mini', system_fingerprint: 'fp_mock', usage });
    const choices = result?.choices as { index: number; message: { role: string; content: string }; finish_reason: string }[];
    expect(choices.map((choice) => [choice.index, choice.message.role, choice.message.content])).toEqual([
      [0, 'assistant', contents[0]],
      [1, 'assistant', contents[1]],
    ]);
    expect(contents[0]).toMatch(/^Mock answer /);
    expect(choices.every((choice) => choice.finish_reason === 'stop')).toBe(true);
  });

  it('leaves usage out when include_usage was not set', async () => {
    const { assembler } = await streamThrough('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'no usage please' }] });
    expect(assembler.result()).toBeDefined();
    expect(assembler.result()).not.toHaveProperty('usage');
  });

  it('assembles a streamed tool call', async () => {
    const { assembler, raw } = await streamThrough('/chat/completions', {
      model: 'gpt-4o-mini',
      messages: [{ role: 'user', content: 'weather?' }],
      tools: [{ type: 'function', function: { name: 'get_weather', parameters: { type: 'object', properties: { city: { type: 'string' }, days: { type: 'integer' } } } } }],
    });
    const fragments = (await sdkChunks<ChatCompletionChunk>(raw)).flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []);
    const message = (assembler.result()?.choices as { message: Record<string, unknown>; finish_reason: string }[])[0];
    expect(message?.finish_reason).toBe('tool_calls');
    expect(message?.message).toEqual({
      role: 'assistant',
      content: null,
      refusal: null,
      tool_calls: [{ id: fragments[0]?.id, type: 'function', function: { name: 'get_weather', arguments: fragments.map((f) => f.function?.arguments ?? '').join('') } }],
    });
    expect(JSON.parse((message?.message.tool_calls as { function: { arguments: string } }[])[0]?.function.arguments ?? '')).toHaveProperty('city');
  });

  it('assembles a legacy completions stream', async () => {
    const { assembler, raw } = await streamThrough('/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Say', n: 2, max_tokens: 5, stream_options: { include_usage: true } });
    const chunks = await sdkChunks<Completion>(raw);
    const texts = ['', ''];
    for (const chunk of chunks) for (const choice of chunk.choices) texts[choice.index] += choice.text;
    const result = assembler.result();
    expect((result?.choices as { text: string; finish_reason: string }[]).map((choice) => [choice.text, choice.finish_reason])).toEqual([
      [texts[0], 'length'],
      [texts[1], 'length'],
    ]);
    expect(result?.usage).toEqual(chunks.at(-1)?.usage);
    expect(result?.object).toBe('text_completion');
  });

  it('yields nothing for a stream cut before [DONE]', async () => {
    const { assembler } = await streamThrough('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { 'x-mock-fault': 'no-done' });
    expect(assembler.done).toBe(false);
    expect(assembler.failed).toBe(false);
    expect(assembler.result()).toBeUndefined();
  });

  it('marks a stream with a garbage event failed', async () => {
    const { assembler } = await streamThrough('/chat/completions', { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'x' }] }, { 'x-mock-fault': 'garbage-stream' });
    expect(assembler.failed).toBe(true);
    expect(assembler.result()).toBeUndefined();
  });
});
