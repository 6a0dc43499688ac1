// Replays a stored non-streaming completion as the SSE body OpenAI would have streamed for it, so a cache hit
// answers a streaming request in the exact chunk format clients parse.
import { isRecord } from './wire.js';

export interface RenderOptions {
  /** The request set `stream_options.include_usage`: every chunk carries `"usage":null` and a usage chunk ends the stream. */
  includeUsage: boolean;
  /** Characters of content per chunk, default 24, so a hit streams realistically. */
  pieceChars?: number;
}

const DEFAULT_PIECE_CHARS = 24;
const DONE_EVENT = 'data: [DONE]\n\n';
const COMPLETION_LOGPROB_FIELDS = ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'] as const;

type TextChannel = 'content' | 'refusal';


function stringOrNull(value: unknown): string | null {
  return typeof value === 'string' ? value : null;
}

function malformed(what: string): TypeError {
  return new TypeError(`stored completion is malformed: ${what}`);
}

interface StoredChoice {
  index: number;
  fields: Record<string, unknown>;
}

function storedChoices(completion: Record<string, unknown>): StoredChoice[] {
  const choices = completion.choices;
  if (!Array.isArray(choices)) throw malformed('choices is not an array');
  return choices.map((choice, at) => {
    if (!isRecord(choice) || typeof choice.index !== 'number' || !Number.isInteger(choice.index)) throw malformed(`choices[${at}] has no index`);
    return { index: choice.index, fields: choice };
  });
}

function pieceSize(options: RenderOptions): number {
  const size = options.pieceChars ?? DEFAULT_PIECE_CHARS;
  if (!Number.isInteger(size) || size < 1) throw new RangeError(`pieceChars must be a positive integer, got ${size}`);
  return size;
}

/** Cuts text into pieces of about `size` UTF-16 units, never between the two halves of a surrogate pair. */
function textPieces(text: string, size: number): string[] {
  const pieces: string[] = [];
  let start = 0;
  while (start < text.length) {
    let end = Math.min(start + size, text.length);
    const last = text.charCodeAt(end - 1);
    if (end < text.length && last >= 0xd800 && last <= 0xdbff) end = end - 1 > start ? end - 1 : end + 1;
    pieces.push(text.slice(start, end));
    start = end;
  }
  return pieces;
}

/**
 * Writes the SSE events of one stream. The envelope every chunk repeats is serialised once; keys the stored object
 * lacks are left out rather than invented, so the stream assembles back into exactly the stored object.
 */
class ChunkWriter {
  readonly events: string[] = [];
  /** `data: {"id":…,"object":…,…,"choices":[` */
  private readonly head: string;
  /** `]}` and the blank line, with `"usage":null` when usage was requested. */
  private readonly tail: string;

  constructor(completion: Record<string, unknown>, object: string, envelopeFields: readonly string[], includeUsage: boolean) {
    const envelope: Record<string, unknown> = {};
    if (completion.id !== undefined) envelope.id = completion.id;
    envelope.object = object;
    for (const field of envelopeFields) {
      if (completion[field] !== undefined) envelope[field] = completion[field];
    }
    this.head = `data: ${JSON.stringify(envelope).slice(0, -1)},"choices":[`;
    this.tail = includeUsage ? '],"usage":null}\n\n' : ']}\n\n';
  }

  /** A chat chunk; OpenAI's key order is index, delta, logprobs, finish_reason. */
  chat(index: number, delta: Record<string, unknown>, logprobs: unknown, finishReason: unknown = null): void {
    this.events.push(`${this.head}{"index":${index},"delta":${JSON.stringify(delta)},"logprobs":${JSON.stringify(logprobs)},"finish_reason":${JSON.stringify(finishReason)}}${this.tail}`);
  }

  /** A chat chunk carrying one piece of text: the bulk of a stream, so no object is built and serialised for it. */
  chatPiece(index: number, channel: TextChannel, piece: string): void {
    this.events.push(`${this.head}{"index":${index},"delta":{"${channel}":${JSON.stringify(piece)}},"logprobs":null,"finish_reason":null}${this.tail}`);
  }

  /** A legacy completions chunk; OpenAI's key order is text, index, logprobs, finish_reason. */
  text(index: number, text: string, logprobs: unknown, finishReason: unknown = null): void {
    this.events.push(`${this.head}{"text":${JSON.stringify(text)},"index":${index},"logprobs":${JSON.stringify(logprobs)},"finish_reason":${JSON.stringify(finishReason)}}${this.tail}`);
  }

  /** The usage chunk (`choices: []`) when usage was requested and is stored, then `[DONE]`; returns the whole body. */
  finish(completion: Record<string, unknown>, includeUsage: boolean): string {
    if (includeUsage && isRecord(completion.usage)) this.events.push(`${this.head}],"usage":${JSON.stringify(completion.usage)}}\n\n`);
    this.events.push(DONE_EVENT);
    return this.events.join('');
  }
}

/** The SSE body OpenAI would have streamed for this stored `chat.completion`. */
export function renderChatCompletionStream(completion: Record<string, unknown>, options: RenderOptions): string {
  const size = pieceSize(options);
  const writer = new ChunkWriter(completion, 'chat.completion.chunk', ['created', 'model', 'service_tier', 'system_fingerprint'], options.includeUsage);
  for (const choice of storedChoices(completion)) writeChatChoice(writer, choice, size);
  return writer.finish(completion, options.includeUsage);
}

function writeChatChoice(writer: ChunkWriter, { index, fields: choice }: StoredChoice, size: number): void {
  const message = choice.message;
  if (!isRecord(message)) throw malformed(`choice ${index} has no message`);
  const content = stringOrNull(message.content);
  const refusal = stringOrNull(message.refusal);
  const toolCalls = Array.isArray(message.tool_calls) ? message.tool_calls.filter(isRecord) : [];
  const functionCall = isRecord(message.function_call) ? message.function_call : undefined;
  const logprobs = isRecord(choice.logprobs) ? choice.logprobs : null;
  const contentLogprobs = logprobs !== null && Array.isArray(logprobs.content) ? logprobs.content : null;
  const refusalLogprobs = logprobs !== null && Array.isArray(logprobs.refusal) ? logprobs.refusal : null;

  // OpenAI's first delta: `content: ""` for text, `content: null` otherwise; `refusal: ""` only when refusing; a
  // call-only message names its first tool call (or legacy function call) right there.
  const first: Record<string, unknown> = { role: stringOrNull(message.role) ?? 'assistant', content: content === null ? null : '' };
  const callsInFirst = content === null && refusal === null;
  const firstCall = toolCalls[0];
  if (callsInFirst && firstCall !== undefined) first.tool_calls = [toolCallHead(firstCall, 0)];
  else if (callsInFirst && functionCall !== undefined) first.function_call = functionCallHead(functionCall);
  first.refusal = refusal === null ? null : '';
  writer.chat(
    index,
    first,
    logprobs === null ? null : { content: openingLogprobs(content, contentLogprobs), refusal: openingLogprobs(refusal, refusalLogprobs) },
  );

  if (content !== null) writeChatText(writer, index, 'content', content, contentLogprobs, size);
  if (refusal !== null) writeChatText(writer, index, 'refusal', refusal, refusalLogprobs, size);

  for (let callIndex = 0; callIndex < toolCalls.length; callIndex++) {
    const call = toolCalls[callIndex] as Record<string, unknown>;
    if (callIndex > 0 || !callsInFirst) writer.chat(index, { tool_calls: [toolCallHead(call, callIndex)] }, null);
    const fn = isRecord(call.function) ? call.function : {};
    for (const fragment of textPieces(stringOrNull(fn.arguments) ?? '', size)) {
      writer.chat(index, { tool_calls: [{ index: callIndex, function: { arguments: fragment } }] }, null);
    }
  }
  if (functionCall !== undefined) {
    if (first.function_call === undefined) writer.chat(index, { function_call: functionCallHead(functionCall) }, null);
    for (const fragment of textPieces(stringOrNull(functionCall.arguments) ?? '', size)) writer.chat(index, { function_call: { arguments: fragment } }, null);
  }
  if (Array.isArray(message.annotations) && message.annotations.length > 0) writer.chat(index, { annotations: message.annotations }, null);

  writer.chat(index, {}, null, choice.finish_reason ?? null);
}

/** The opening chunk starts each logprobs array the stored object has; an empty text's entries have no other chunk. */
function openingLogprobs(text: string | null, entries: unknown[] | null): unknown[] | null {
  if (entries === null) return null;
  return text === '' ? entries : [];
}

function writeChatText(writer: ChunkWriter, index: number, channel: TextChannel, text: string, entries: unknown[] | null, size: number): void {
  if (text === '') return;
  if (entries !== null && tokensSpell(text, entries, chatLogprobToken)) {
    for (const entry of entries) writer.chat(index, { [channel]: (entry as { token: string }).token }, chatLogprobs(channel, [entry]));
    return;
  }
  const pieces = textPieces(text, size);
  let at = 0;
  // Tokens that do not spell the text (byte-level tokens of a split character) all ride on the first piece.
  if (entries !== null) writer.chat(index, { [channel]: pieces[at++] }, chatLogprobs(channel, entries));
  for (; at < pieces.length; at++) writer.chatPiece(index, channel, pieces[at] as string);
}

/** Whether the tokens spell out the text exactly, so each can ride on the chunk that carries it. */
function tokensSpell(text: string, items: unknown[], tokenOf: (item: unknown) => unknown): boolean {
  if (items.length === 0) return false;
  let spelled = '';
  for (const item of items) {
    const token = tokenOf(item);
    if (typeof token !== 'string') return false;
    spelled += token;
  }
  return spelled === text;
}

function chatLogprobToken(entry: unknown): unknown {
  return isRecord(entry) ? entry.token : undefined;
}

function legacyLogprobToken(token: unknown): unknown {
  return token;
}

function chatLogprobs(channel: TextChannel, entries: unknown[]): Record<string, unknown> {
  return channel === 'content' ? { content: entries, refusal: null } : { content: null, refusal: entries };
}

function functionCallHead(call: Record<string, unknown>): Record<string, unknown> {
  return { name: stringOrNull(call.name) ?? '', arguments: '' };
}

function toolCallHead(call: Record<string, unknown>, index: number): Record<string, unknown> {
  const fn = isRecord(call.function) ? call.function : {};
  return { index, id: call.id, type: call.type ?? 'function', function: { name: stringOrNull(fn.name) ?? '', arguments: '' } };
}

/** The SSE body OpenAI would have streamed for this stored `text_completion`. */
export function renderTextCompletionStream(completion: Record<string, unknown>, options: RenderOptions): string {
  const size = pieceSize(options);
  const writer = new ChunkWriter(completion, 'text_completion', ['created', 'model', 'system_fingerprint'], options.includeUsage);
  for (const { index, fields: choice } of storedChoices(completion)) {
    const text = stringOrNull(choice.text) ?? '';
    const logprobs = isRecord(choice.logprobs) ? choice.logprobs : null;
    const tokens = logprobs !== null && Array.isArray(logprobs.tokens) ? logprobs.tokens : null;
    if (logprobs !== null && tokens !== null && tokensSpell(text, tokens, legacyLogprobToken)) {
      for (let at = 0; at < tokens.length; at++) writer.text(index, tokens[at] as string, completionLogprobsAt(logprobs, at));
    } else {
      const pieces = textPieces(text, size);
      // Without a token-per-chunk split, the whole logprobs object rides on the first chunk (an empty one if need be).
      if (pieces.length === 0 && logprobs !== null) pieces.push('');
      for (let at = 0; at < pieces.length; at++) writer.text(index, pieces[at] as string, at === 0 ? logprobs : null);
    }
    writer.text(index, '', null, choice.finish_reason ?? null);
  }
  return writer.finish(completion, options.includeUsage);
}

/** The logprobs of token `at` alone, in the legacy parallel-array form. */
function completionLogprobsAt(logprobs: Record<string, unknown>, at: number): Record<string, unknown> {
  const single: Record<string, unknown> = {};
  for (const field of COMPLETION_LOGPROB_FIELDS) {
    const values = logprobs[field];
    single[field] = Array.isArray(values) ? [values[at]] : (values ?? null);
  }
  return single;
}

/** The stream for a stored completion body of either route; throws when the body is not a readable completion. */
export function renderCompletionStream(route: 'chat.completions' | 'completions', body: Buffer, includeUsage: boolean): string {
  const completion = JSON.parse(body.toString('utf8')) as unknown;
  if (!isRecord(completion)) throw malformed('not a JSON object');
  const render = route === 'chat.completions' ? renderChatCompletionStream : renderTextCompletionStream;
  return render(completion, { includeUsage });
}
