import { describe, expect, it } from 'vitest';
import { Stream } from 'openai/core/streaming';
import { ChatCompletionStream } from 'openai/lib/ChatCompletionStream';
import type { ChatCompletion, ChatCompletionChunk } from 'openai/resources/chat/completions';
import type { Completion } from 'openai/resources/completions';
// The mock's seeded generator, so a failing split pattern can be reproduced.
import { seededRandom } from '../../../loadtest/mock-upstream.js';
import { StreamAssembler, type CompletionRoute } from '../../../src/openai/assemble.js';
import { renderChatCompletionStream, renderTextCompletionStream } from '../../../src/openai/render.js';

// Stored entries exactly as OpenAI's non-streaming endpoints return them (and as StreamAssembler builds them).

const envelope = { id: 'chatcmpl-AbC123', object: 'chat.completion', created: 1_723_024_757, model: 'gpt-4o-2024-08-06' };
const usage = { prompt_tokens: 17, completion_tokens: 31, total_tokens: 48, prompt_tokens_details: { cached_tokens: 0 } };

function chat(choices: Record<string, unknown>[], extra: Record<string, unknown> = {}): Record<string, unknown> {
  return { ...envelope, choices, usage, service_tier: 'default', system_fingerprint: 'fp_845eaabc1f', ...extra };
}

function textChoice(index: number, content: string, finishReason = 'stop', logprobs: unknown = null): Record<string, unknown> {
  return { index, message: { role: 'assistant', content, refusal: null }, logprobs, finish_reason: finishReason };
}

function tokenLogprob(token: string, logprob: number): Record<string, unknown> {
  const bytes = [...Buffer.from(token)];
  return { token, logprob, bytes, top_logprobs: [{ token, logprob, bytes }] };
}

const UNICODE = 'Grüße aus Köln 👋🏽! Emoji: 🎉🧪👩‍👩‍👧 — 日本語のテキスト, and 𝔘𝔫𝔦𝔠𝔬𝔡𝔢 math letters 𝟙𝟚𝟛. Café ☕, naïve façade.';

const CHAT_FIXTURES: Record<string, Record<string, unknown>> = {
  'plain text with unicode and emoji': chat([textChoice(0, UNICODE)]),
  'empty content': chat([textChoice(0, '')]),
  'two choices (n=2), one cut by length': chat([textChoice(0, 'First answer, complete.'), textChoice(1, 'Second answer that ran out of tok', 'length')]),
  'finish_reason length': chat([textChoice(0, 'The answer was cut off in the mid', 'length')]),
  'several tool calls': chat([
    {
      index: 0,
      message: {
        role: 'assistant',
        content: null,
        refusal: null,
        tool_calls: [
          { id: 'call_lQnnsesjFMWMQ5IeWPHzR4th', type: 'function', function: { name: 'get_weather', arguments: '{"city": "Edinburgh", "country": "UK", "units": "c"}' } },
          { id: 'call_2xjOUgaCdiwAcl9ZBL9LyMUU', type: 'function', function: { name: 'get_stock_price', arguments: '{"ticker": "AAPL", "exchange": "NASDAQ"}' } },
          { id: 'call_3noArgs', type: 'function', function: { name: 'now', arguments: '' } },
        ],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
  ]),
  'text then a tool call': chat([
    {
      index: 0,
      message: {
        role: 'assistant',
        content: 'Let me look that up 🔎.',
        refusal: null,
        tool_calls: [{ id: 'call_x', type: 'function', function: { name: 'search', arguments: '{"q":"naïve"}' } }],
      },
      logprobs: null,
      finish_reason: 'tool_calls',
    },
  ]),
  'legacy function_call': chat([
    {
      index: 0,
      message: { role: 'assistant', content: null, refusal: null, function_call: { name: 'get_weather', arguments: '{"location":"Boston, MA"}' } },
      logprobs: null,
      finish_reason: 'function_call',
    },
  ]),
  refusal: chat([
    {
      index: 0,
      message: { role: 'assistant', content: null, refusal: "I'm sorry, but I can't assist with that request." },
      logprobs: null,
      finish_reason: 'stop',
    },
  ]),
  'refusal with logprobs': chat([
    {
      index: 0,
      message: { role: 'assistant', content: null, refusal: "I'm sorry." },
      logprobs: { content: null, refusal: [tokenLogprob("I'm", -0.0016), tokenLogprob(' sorry', -0.78), tokenLogprob('.', -3.4e-6)] },
      finish_reason: 'stop',
    },
  ]),
  'content logprobs': chat([textChoice(0, 'Foo. Bär 🎉', 'stop', { content: [tokenLogprob('Foo', -0.0067), tokenLogprob('.', -2.49), tokenLogprob(' Bär', -1.5), tokenLogprob(' 🎉', -0.2)], refusal: null })]),
  'logprob tokens that do not spell the text (split character)': chat([
    textChoice(0, 'é!', 'stop', {
      content: [
        { token: 'bytes:\\xc3', logprob: -0.1, bytes: [195], top_logprobs: [] },
        { token: 'bytes:\\xa9', logprob: -0.2, bytes: [169], top_logprobs: [] },
        { token: '!', logprob: -0.3, bytes: [33], top_logprobs: [] },
      ],
      refusal: null,
    }),
  ]),
  'null system_fingerprint, no service_tier': (() => {
    const { service_tier: _dropped, ...rest } = chat([textChoice(0, 'Hi.')], { system_fingerprint: null });
    return rest;
  })(),
};

const TEXT_FIXTURES: Record<string, Record<string, unknown>> = {
  'plain text with unicode': {
    id: 'cmpl-xyz',
    object: 'text_completion',
    created: 1_692_901_427,
    model: 'gpt-3.5-turbo-instruct',
    choices: [{ text: ` and then ${UNICODE}`, index: 0, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 5, completion_tokens: 40, total_tokens: 45 },
  },
  'two choices, empty and cut': {
    id: 'cmpl-two',
    object: 'text_completion',
    created: 1_692_901_427,
    model: 'gpt-3.5-turbo-instruct',
    choices: [
      { text: '', index: 0, logprobs: null, finish_reason: 'stop' },
      { text: 'cut off he', index: 1, logprobs: null, finish_reason: 'length' },
    ],
    usage: { prompt_tokens: 5, completion_tokens: 3, total_tokens: 8 },
  },
  logprobs: {
    id: 'cmpl-lp',
    object: 'text_completion',
    created: 1_692_901_427,
    model: 'gpt-3.5-turbo-instruct',
    choices: [
      {
        text: ' Hello wörld',
        index: 0,
        logprobs: {
          tokens: [' Hello', ' w', 'örld'],
          token_logprobs: [-0.5, -1.25, -0.01],
          top_logprobs: [{ ' Hello': -0.5 }, { ' w': -1.25 }, { örld: -0.01 }],
          text_offset: [10, 16, 18],
        },
        finish_reason: 'stop',
      },
    ],
    usage: { prompt_tokens: 2, completion_tokens: 3, total_tokens: 5 },
  },
};

/** The fields of a stored choice these tests read. */
interface StoredChatChoice {
  index: number;
  message: { content: string | null; refusal: string | null; tool_calls?: unknown; function_call?: unknown };
  logprobs: unknown;
  finish_reason: string;
}

interface StoredTextChoice {
  text: string;
  index: number;
  finish_reason: string;
}

function withoutUsage(completion: Record<string, unknown>): Record<string, unknown> {
  const { usage: _usage, ...rest } = completion;
  return rest;
}

function sseResponse(body: string): Response {
  return new Response(body, { headers: { 'content-type': 'text/event-stream' } });
}

/** What a client gets from the official SDK's own SSE parser and stream accumulator. */
async function sdkFinalChatCompletion(body: string): Promise<ChatCompletion> {
  const chunks = Stream.fromSSEResponse<ChatCompletionChunk>(sseResponse(body), new AbortController());
  return ChatCompletionStream.fromReadableStream(chunks.toReadableStream()).finalChatCompletion();
}

async function sdkChunks<T>(body: string): Promise<T[]> {
  const items: T[] = [];
  for await (const item of Stream.fromSSEResponse<T>(sseResponse(body), new AbortController())) items.push(item);
  return items;
}

function assemble(route: CompletionRoute, bytes: Buffer, pieceSizes: () => number): StreamAssembler {
  const assembler = new StreamAssembler(route);
  for (let at = 0; at < bytes.length; ) {
    const size = Math.max(1, pieceSizes());
    assembler.push(bytes.subarray(at, at + size));
    at += size;
  }
  return assembler;
}

const SPLITS: Record<string, (seed: number) => () => number> = {
  'in one piece': () => () => Number.MAX_SAFE_INTEGER,
  'one byte at a time': () => () => 1,
  'in random pieces of 1-9 bytes': (seed) => {
    const random = seededRandom(seed);
    return () => 1 + Math.floor(random() * 9);
  },
  'in random pieces of 1-200 bytes': (seed) => {
    const random = seededRandom(seed ^ 0x5bd1e995);
    return () => 1 + Math.floor(random() * 200);
  },
};

const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/;

describe('renderChatCompletionStream', () => {
  describe.each(Object.entries(CHAT_FIXTURES))('%s', (_name, stored) => {
    it.each([true, false])('parses with the official SDK into the stored answer (includeUsage %s)', async (includeUsage) => {
      const final = await sdkFinalChatCompletion(renderChatCompletionStream(stored, { includeUsage }));
      const storedChoices = stored.choices as StoredChatChoice[];
      expect(final.choices).toHaveLength(storedChoices.length);
      for (const [at, choice] of final.choices.entries()) {
        const expected = storedChoices[at] as StoredChatChoice;
        expect(choice.index).toBe(expected.index);
        expect(choice.finish_reason).toBe(expected.finish_reason);
        // The SDK's accumulator reads an empty string as "no content", as it does for OpenAI's own streams.
        expect(choice.message.content).toBe(expected.message.content === '' ? null : expected.message.content);
        expect(choice.message.refusal).toBe(expected.message.refusal);
        expect(choice.message.role).toBe('assistant');
        expect(choice.message.tool_calls).toEqual(expected.message.tool_calls);
        expect(choice.message.function_call).toEqual(expected.message.function_call);
        expect(choice.logprobs).toEqual(expected.logprobs);
      }
      expect(final.usage).toEqual(includeUsage ? stored.usage : undefined);
      expect(final.id).toBe(stored.id);
      expect(final.created).toBe(stored.created);
      expect(final.model).toBe(stored.model);
      expect(final.service_tier).toBe(stored.service_tier);
    });

    it.each(Object.keys(SPLITS))('assembles back into the stored object when fed %s', (split) => {
      for (const includeUsage of [true, false]) {
        const body = renderChatCompletionStream(stored, { includeUsage, pieceChars: 5 });
        const assembler = assemble('chat.completions', Buffer.from(body), (SPLITS[split] as (seed: number) => () => number)(body.length));
        expect(assembler.failed).toBe(false);
        expect(assembler.done).toBe(true);
        expect(assembler.result()).toEqual(includeUsage ? stored : withoutUsage(stored));
      }
    });

    it('assembles back with CRLF line endings', () => {
      // JSON escapes newlines inside strings, so every LF in the body is a line ending.
      const body = renderChatCompletionStream(stored, { includeUsage: true }).replaceAll('\n', '\r\n');
      const assembler = assemble('chat.completions', Buffer.from(body), (SPLITS['in random pieces of 1-9 bytes'] as (seed: number) => () => number)(7));
      expect(assembler.result()).toEqual(stored);
    });
  });

  it("opens a text answer the way OpenAI does: role, empty content, null refusal, then pieces and an empty final delta", () => {
    const body = renderChatCompletionStream(chat([textChoice(0, 'Hello there')]), { includeUsage: true, pieceChars: 6 });
    const head = '{"id":"chatcmpl-AbC123","object":"chat.completion.chunk","created":1723024757,"model":"gpt-4o-2024-08-06","service_tier":"default","system_fingerprint":"fp_845eaabc1f","choices":[';
    expect(body).toBe(
      `data: ${head}{"index":0,"delta":{"role":"assistant","content":"","refusal":null},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head}{"index":0,"delta":{"content":"Hello "},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head}{"index":0,"delta":{"content":"there"},"logprobs":null,"finish_reason":null}],"usage":null}\n\n` +
        `data: ${head}{"index":0,"delta":{},"logprobs":null,"finish_reason":"stop"}],"usage":null}\n\n` +
        `data: ${head}],"usage":${JSON.stringify(usage)}}\n\n` +
        'data: [DONE]\n\n',
    );
  });

  it('leaves usage out entirely when it was not requested', () => {
    const body = renderChatCompletionStream(chat([textChoice(0, 'Hello there')]), { includeUsage: false });
    expect(body).not.toContain('usage');
    expect(body).not.toContain('"choices":[]');
  });

  it('names the first tool call in the opening delta and later ones in their own chunks', async () => {
    const stored = CHAT_FIXTURES['several tool calls'] as Record<string, unknown>;
    const chunks = await sdkChunks<ChatCompletionChunk>(renderChatCompletionStream(stored, { includeUsage: false, pieceChars: 8 }));
    expect(chunks[0]?.choices[0]?.delta).toEqual({
      role: 'assistant',
      content: null,
      tool_calls: [{ index: 0, id: 'call_lQnnsesjFMWMQ5IeWPHzR4th', type: 'function', function: { name: 'get_weather', arguments: '' } }],
      refusal: null,
    });
    const heads = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []).filter((call) => call.id !== undefined);
    expect(heads.map((call) => [call.index, call.id, call.function?.name, call.function?.arguments])).toEqual([
      [0, 'call_lQnnsesjFMWMQ5IeWPHzR4th', 'get_weather', ''],
      [1, 'call_2xjOUgaCdiwAcl9ZBL9LyMUU', 'get_stock_price', ''],
      [2, 'call_3noArgs', 'now', ''],
    ]);
    const fragments = chunks.flatMap((chunk) => chunk.choices[0]?.delta.tool_calls ?? []).filter((call) => call.id === undefined);
    expect(fragments.every((call) => Object.keys(call).join() === 'index,function' && (call.function?.arguments?.length ?? 0) <= 8)).toBe(true);
  });

  it('opens a refusal with content null and refusal ""', async () => {
    const chunks = await sdkChunks<ChatCompletionChunk>(renderChatCompletionStream(CHAT_FIXTURES['refusal'] as Record<string, unknown>, { includeUsage: false }));
    expect(chunks[0]?.choices[0]?.delta).toEqual({ role: 'assistant', content: null, refusal: '' });
    expect(chunks.slice(1, -1).every((chunk) => Object.keys(chunk.choices[0]?.delta ?? {}).join() === 'refusal')).toBe(true);
  });

  it('puts each logprob on the chunk that carries its token, after an opening chunk with empty arrays', async () => {
    const stored = CHAT_FIXTURES['content logprobs'] as Record<string, unknown>;
    const chunks = await sdkChunks<ChatCompletionChunk>(renderChatCompletionStream(stored, { includeUsage: false }));
    expect(chunks[0]?.choices[0]?.logprobs).toEqual({ content: [], refusal: null });
    const carriers = chunks.slice(1, -1);
    expect(carriers.map((chunk) => chunk.choices[0]?.delta.content)).toEqual(['Foo', '.', ' Bär', ' 🎉']);
    expect(carriers.map((chunk) => chunk.choices[0]?.logprobs?.content?.map((entry) => entry.token))).toEqual([['Foo'], ['.'], [' Bär'], [' 🎉']]);
    expect(chunks.at(-1)?.choices[0]).toEqual({ index: 0, delta: {}, logprobs: null, finish_reason: 'stop' });
  });

  it('cuts content into pieces of about pieceChars, never inside a surrogate pair', async () => {
    for (const pieceChars of [1, 2, 3, 5, 24]) {
      const chunks = await sdkChunks<ChatCompletionChunk>(renderChatCompletionStream(chat([textChoice(0, UNICODE)]), { includeUsage: false, pieceChars }));
      const pieces = chunks.slice(1, -1).map((chunk) => chunk.choices[0]?.delta.content ?? '');
      expect(pieces.join('')).toBe(UNICODE);
      expect(pieces.filter((piece) => LONE_SURROGATE.test(piece))).toEqual([]);
      expect(pieces.every((piece) => piece.length >= 1 && piece.length <= Math.max(pieceChars, 2))).toBe(true);
      expect(pieces.length).toBeGreaterThanOrEqual(Math.ceil(UNICODE.length / Math.max(pieceChars, 2)));
    }
  });

  it('emits every chunk of one choice before the next choice, each opened by its role', async () => {
    const chunks = await sdkChunks<ChatCompletionChunk>(renderChatCompletionStream(CHAT_FIXTURES['two choices (n=2), one cut by length'] as Record<string, unknown>, { includeUsage: true }));
    const order = chunks.flatMap((chunk) => chunk.choices.map((choice) => choice.index));
    expect(order).toEqual([...order].sort((a, b) => a - b));
    expect(chunks.filter((chunk) => chunk.choices[0]?.delta.role === 'assistant').map((chunk) => chunk.choices[0]?.index)).toEqual([0, 1]);
    expect(chunks.at(-1)).toMatchObject({ choices: [], usage });
  });

  it('refuses a stored object without choices instead of streaming an empty answer', () => {
    expect(() => renderChatCompletionStream({ ...envelope, choices: 'nope' }, { includeUsage: false })).toThrow(TypeError);
    expect(() => renderChatCompletionStream(chat([textChoice(0, 'x')]), { includeUsage: false, pieceChars: 0 })).toThrow(RangeError);
  });
});

describe('renderTextCompletionStream', () => {
  describe.each(Object.entries(TEXT_FIXTURES))('%s', (_name, stored) => {
    it.each([true, false])('parses with the official SDK into the stored text (includeUsage %s)', async (includeUsage) => {
      const chunks = await sdkChunks<Completion>(renderTextCompletionStream(stored, { includeUsage }));
      const texts = new Map<number, string>();
      const finishReasons = new Map<number, string>();
      for (const chunk of chunks) {
        expect(chunk.object).toBe('text_completion');
        for (const choice of chunk.choices) {
          texts.set(choice.index, (texts.get(choice.index) ?? '') + choice.text);
          if (choice.finish_reason !== null) finishReasons.set(choice.index, choice.finish_reason);
        }
      }
      const storedChoices = stored.choices as StoredTextChoice[];
      expect([...texts.entries()]).toEqual(storedChoices.map((choice) => [choice.index, choice.text]));
      expect([...finishReasons.entries()]).toEqual(storedChoices.map((choice) => [choice.index, choice.finish_reason]));
      expect(chunks.filter((chunk) => chunk.usage != null).map((chunk) => chunk.usage)).toEqual(includeUsage ? [stored.usage] : []);
    });

    it.each(Object.keys(SPLITS))('assembles back into the stored object when fed %s', (split) => {
      for (const includeUsage of [true, false]) {
        const body = renderTextCompletionStream(stored, { includeUsage, pieceChars: 4 });
        const assembler = assemble('completions', Buffer.from(body), (SPLITS[split] as (seed: number) => () => number)(body.length));
        expect(assembler.result()).toEqual(includeUsage ? stored : withoutUsage(stored));
      }
    });
  });

  it('streams one token per chunk when logprobs are stored, then an empty final chunk', async () => {
    const chunks = await sdkChunks<Completion>(renderTextCompletionStream(TEXT_FIXTURES['logprobs'] as Record<string, unknown>, { includeUsage: false }));
    expect(chunks.map((chunk) => chunk.choices[0]?.text)).toEqual([' Hello', ' w', 'örld', '']);
    expect(chunks[1]?.choices[0]?.logprobs).toEqual({ tokens: [' w'], token_logprobs: [-1.25], top_logprobs: [{ ' w': -1.25 }], text_offset: [16] });
    expect(chunks.at(-1)?.choices[0]).toEqual({ text: '', index: 0, logprobs: null, finish_reason: 'stop' });
  });

  it('frames chunks as text_completion objects with the stored envelope', () => {
    const body = renderTextCompletionStream(TEXT_FIXTURES['two choices, empty and cut'] as Record<string, unknown>, { includeUsage: false, pieceChars: 100 });
    expect(body).toBe(
      'data: {"id":"cmpl-two","object":"text_completion","created":1692901427,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"","index":0,"logprobs":null,"finish_reason":"stop"}]}\n\n' +
        'data: {"id":"cmpl-two","object":"text_completion","created":1692901427,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"cut off he","index":1,"logprobs":null,"finish_reason":null}]}\n\n' +
        'data: {"id":"cmpl-two","object":"text_completion","created":1692901427,"model":"gpt-3.5-turbo-instruct","choices":[{"text":"","index":1,"logprobs":null,"finish_reason":"length"}]}\n\n' +
        'data: [DONE]\n\n',
    );
  });
});
