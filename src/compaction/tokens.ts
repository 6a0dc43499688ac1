// Token counts of a chat conversation for the request's model, counted the way OpenAI bills prompts: every message
// costs 3 tokens of framing plus its role, content and name, a name 1 more, and the reply is primed with 3.
import { createRequire } from 'node:module';
import { isRecord, type JsonObject } from '../openai/wire.js';

export type EncodingName = 'o200k_base' | 'cl100k_base';

/** A model no rule below names is counted with o200k_base, the encoding of every current OpenAI chat model. */
export const FALLBACK_ENCODING: EncodingName = 'o200k_base';

const TOKENS_PER_MESSAGE = 3;
const TOKENS_PER_NAME = 1;
const REPLY_PRIMING = 3;
/** Framing of one tool call inside an assistant message (its id is not billed as text). */
const TOKENS_PER_TOOL_CALL = 3;
/** An image part at low detail; higher details cost more, but their size is not in the request. */
const TOKENS_PER_IMAGE = 85;

const ENCODINGS: readonly EncodingName[] = ['o200k_base', 'cl100k_base'];
const loadModule = createRequire(import.meta.url);
const counters: Partial<Record<EncodingName, (text: string) => number>> = {};

/**
 * An encoding's counter, loaded on first use. Loading both rank tables took about 1 s of CPU, half of Recall's start,
 * and only compaction and token budgets count tokens: a Recall without them never loads them, and the first
 * compaction of a process waits for its model's table once (about half a second).
 */
function counterFor(encoding: EncodingName): (text: string) => number {
  return counters[encoding] ??= (loadModule(`gpt-tokenizer/encoding/${encoding}`) as { countTokens: (text: string) => number }).countTokens;
}

/** Loads every encoding now, for a Recall that counts tokens on every request (token budgets). */
export function loadEncodings(): void {
  for (const encoding of ENCODINGS) counterFor(encoding);
}

/** The encoding of a model: o200k_base for gpt-4o, gpt-4.1, gpt-5 and the o-series; cl100k_base for gpt-4 and gpt-3.5. */
export function encodingFor(model: string): EncodingName {
  const name = model.toLowerCase().replace(/^openai\//, '');
  if (/^(gpt-4o|chatgpt-4o|gpt-4\.1|gpt-4\.5|gpt-5|o1|o3|o4)/.test(name)) return 'o200k_base';
  if (/^(gpt-4|gpt-3\.5|gpt-35)/.test(name)) return 'cl100k_base';
  return FALLBACK_ENCODING;
}

/** Counts the tokens of messages for one model; one per request, so the encoding is looked up once. */
export class TokenCounter {
  readonly encoding: EncodingName;
  private readonly count: (text: string) => number;

  constructor(readonly model: string) {
    this.encoding = encodingFor(model);
    this.count = counterFor(this.encoding);
  }

  /** The prompt tokens of a whole conversation, reply priming included. */
  conversation(messages: readonly JsonObject[]): number {
    let total = REPLY_PRIMING;
    for (const message of messages) total += this.message(message);
    return total;
  }

  /** One message: framing, role, content (text parts, images), name, tool calls and a tool result's content. */
  message(message: JsonObject): number {
    let total = TOKENS_PER_MESSAGE;
    if (typeof message.role === 'string') total += this.count(message.role);
    total += this.content(message.content);
    if (typeof message.name === 'string') total += TOKENS_PER_NAME + this.count(message.name);
    if (typeof message.refusal === 'string') total += this.count(message.refusal);
    if (Array.isArray(message.tool_calls)) {
      for (const call of message.tool_calls) {
        if (!isRecord(call) || !isRecord(call.function)) continue;
        total += TOKENS_PER_TOOL_CALL;
        if (typeof call.function.name === 'string') total += this.count(call.function.name);
        if (typeof call.function.arguments === 'string') total += this.count(call.function.arguments);
      }
    }
    if (isRecord(message.function_call)) {
      const call = message.function_call;
      total += TOKENS_PER_TOOL_CALL;
      if (typeof call.name === 'string') total += this.count(call.name);
      if (typeof call.arguments === 'string') total += this.count(call.arguments);
    }
    return total;
  }

  text(text: string): number {
    return this.count(text);
  }

  private content(content: unknown): number {
    if (typeof content === 'string') return this.count(content);
    if (!Array.isArray(content)) return 0;
    let total = 0;
    for (const part of content) {
      if (!isRecord(part)) continue;
      if (typeof part.text === 'string') total += this.count(part.text);
      else if (typeof part.refusal === 'string') total += this.count(part.refusal);
      else if (part.type === 'image_url') total += TOKENS_PER_IMAGE;
    }
    return total;
  }
}
