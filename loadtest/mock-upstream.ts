// A deterministic OpenAI-compatible upstream on bare node:http, used by Recall's tests and as the "bare server" baseline in load tests.

import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import { createHash } from 'node:crypto';
import { pathToFileURL } from 'node:url';
import { parseArgs } from 'node:util';
import type { AddressInfo } from 'node:net';

export interface MockUpstreamOptions {
  /** Interface to bind; default 127.0.0.1. */
  host?: string;
  /** Port to bind; default 0 picks a free port. */
  port?: number;
  /** Delay before every /v1 answer; default 0. */
  latencyMs?: number;
  /** Delay between SSE chunks of a streamed answer; default 0. */
  chunkDelayMs?: number;
  /**
   * Most /v1 requests in progress at once (latency included), like a provider's concurrency cap; later ones wait
   * their turn in arrival order. Default: no cap.
   */
  maxConcurrent?: number;
  /**
   * Random faults: each /v1 request without a queued or header fault gets fault F with probability `faultRates[F]`
   * (the rates add up to at most 1), e.g. `{ '503': 0.04, stall: 0.01 }`. Drawn from a PRNG seeded with `faultSeed`,
   * so one run's sequence of draws repeats in the next. Default: none.
   */
  faultRates?: Partial<Record<Fault, number>>;
  /** Seed of the random faults' PRNG; default 1. */
  faultSeed?: number;
}

export interface MockUpstreamStats {
  /** Non-control requests received (control routes under /mock/ are not counted). */
  requests: number;
  /** Keyed "METHOD /path" with the query string stripped, e.g. "POST /v1/chat/completions". */
  byRoute: Record<string, number>;
  /** Requests whose client closed the connection before the answer was completely written. */
  aborted: number;
  /** Requests received whose response has not closed yet (those waiting for a turn under maxConcurrent included). */
  inFlight: number;
  /** Requests waiting for a turn under maxConcurrent. */
  waiting: number;
  /** The most requests in progress at once since the last reset (at most maxConcurrent). */
  peakInProgress: number;
  /** Faults applied since the last reset, by fault, whatever chose them (queue, x-mock-fault header, faultRates). */
  faults: Record<string, number>;
}

export interface RecordedRequest {
  method: string;
  /** Path including the query string. */
  path: string;
  headers: Record<string, string | string[] | undefined>;
  body: string;
}

export type Fault = '401' | '429' | '500' | '502' | '503' | '504' | 'stall' | 'broken-stream' | 'garbage-stream' | 'no-done' | 'split-stream' | 'error-event';

export interface MockUpstream {
  /** http://HOST:PORT */
  url: string;
  /** url + '/v1', ready for `new OpenAI({ baseURL })`. */
  baseURL: string;
  stats(): MockUpstreamStats;
  /** The last 200 non-control requests, oldest first. */
  requests(): RecordedRequest[];
  /** Zeroes the counters, forgets recorded requests and queued faults, restores the startup latency defaults. */
  reset(): void;
  setDefaults(o: { latencyMs?: number; chunkDelayMs?: number }): void;
  /** Queues `fault` for the next `count` (default 1) requests to /v1/* routes, in arrival order. */
  failNext(fault: Fault, count?: number): void;
  /** Closes every socket (keep-alive and stalled ones too) and clears every pending timer. */
  close(): Promise<void>;
}

const FAULTS: ReadonlySet<string> = new Set<Fault>(['401', '429', '500', '502', '503', '504', 'stall', 'broken-stream', 'garbage-stream', 'no-done', 'split-stream', 'error-event']);
const RECORDED_REQUEST_LIMIT = 200;
const MAX_CHOICES = 8;
const DEFAULT_EMBEDDING_DIMENSIONS = 16;
const MAX_EMBEDDING_DIMENSIONS = 4096;
/** OpenAI's limits for embeddings: items per request, tokens per item, tokens summed over a request. */
const MAX_EMBEDDING_ITEMS = 2048;
const MAX_EMBEDDING_ITEM_TOKENS = 8192;
const MAX_EMBEDDING_REQUEST_TOKENS = 300_000;
const SYSTEM_FINGERPRINT = 'fp_mock';
/** Arguments of streamed tool calls are cut into fragments of this many characters, roughly a token each. */
const TOOL_ARGUMENT_FRAGMENT_CHARS = 6;
/** Keeps `created` deterministic yet plausible: a fixed epoch (Nov 2023) plus an offset taken from the request hash. */
const CREATED_EPOCH_S = 1_700_000_000;

const JSON_HEADERS = { 'content-type': 'application/json' } as const;
const SSE_HEADERS = { 'content-type': 'text/event-stream', 'cache-control': 'no-cache', connection: 'keep-alive' } as const;
const DONE_FRAME = 'data: [DONE]\n\n';
const GARBAGE_FRAME = 'data: {not json\n\n';
/** What OpenAI sends when an answer fails after its stream started; the connection ends after it. */
const ERROR_EVENT_FRAME = `data: ${JSON.stringify({ error: { message: 'The server had an error while processing your request.', type: 'server_error', param: null, code: null } })}\n\n`;
/** split-stream writes a valid stream in pieces this small, so lines, events and UTF-8 characters arrive cut apart. */
const SPLIT_PIECE_BYTES = 5;
const SPLIT_PIECE_DELAY_MS = 1;

/** Vocabulary for generated answers; neutral words so answers read as text but never look like real output. */
const WORDS = [
  'the', 'quick', 'cache', 'returns', 'a', 'stable', 'answer', 'for', 'every', 'identical', 'request', 'while',
  'upstream', 'latency', 'stays', 'low', 'and', 'tokens', 'flow', 'through', 'proxy', 'layers', 'with', 'plain',
  'content', 'so', 'tests', 'can', 'compare', 'bytes', 'across', 'runs', 'streams', 'arrive', 'in', 'small',
  'pieces', 'reliably', 'models', 'echo', 'nothing', 'real', 'only', 'mock', 'words', 'here', 'today', 'again',
] as const;

interface ModelCard {
  id: string;
  object: 'model';
  created: number;
  owned_by: string;
}

const MODEL_CARDS: readonly ModelCard[] = [
  { id: 'gpt-4o-mini', object: 'model', created: 1721172741, owned_by: 'system' },
  { id: 'gpt-4o', object: 'model', created: 1715367049, owned_by: 'system' },
  { id: 'text-embedding-3-small', object: 'model', created: 1705948997, owned_by: 'system' },
  { id: 'gpt-3.5-turbo-instruct', object: 'model', created: 1692901427, owned_by: 'system' },
];
// The model answers never change, so they are serialised once at load time.
const MODELS_LIST_BODY = JSON.stringify({ object: 'list', data: MODEL_CARDS });
const MODEL_BODY_BY_ID = new Map(MODEL_CARDS.map((card) => [card.id, JSON.stringify(card)]));

/** What a route decided to send, before latency and faults shape how it is written. */
type Answer =
  | { kind: 'json'; status: number; body: string; headers?: Record<string, string> }
  | { kind: 'stream'; frames: string[] };

type JsonAnswer = Extract<Answer, { kind: 'json' }>;

/** A 400 the request deserves, thrown from deep inside parsing and turned into OpenAI's error shape by the dispatcher. */
class InvalidRequest extends Error {
  constructor(
    message: string,
    readonly param: string | null = null,
    readonly code: string | null = null,
  ) {
    super(message);
  }
}

function errorBody(message: string, type: string, param: string | null, code: string | null): string {
  return JSON.stringify({ error: { message, type, param, code } });
}

function errorAnswer(status: number, message: string, type: string, param: string | null = null, code: string | null = null): JsonAnswer {
  return { kind: 'json', status, body: errorBody(message, type, param, code) };
}

function invalidUrlBody(method: string, path: string): string {
  return errorBody(`Invalid URL (${method} ${path})`, 'invalid_request_error', null, null);
}

const RATE_LIMITED: JsonAnswer = {
  kind: 'json',
  status: 429,
  body: errorBody('Rate limit reached for requests', 'requests', null, 'rate_limit_exceeded'),
  headers: {
    'retry-after': '1',
    'x-ratelimit-limit-requests': '60',
    'x-ratelimit-remaining-requests': '0',
    'x-ratelimit-reset-requests': '1s',
  },
};
const SERVER_ERROR_MESSAGE = 'The server had an error while processing your request.';
/** What the real API sends on every answer; added to successful JSON answers of requests with `x-mock-ratelimit-headers: on`. */
const UPSTREAM_LIMIT_HEADERS: Record<string, string> = {
  'x-ratelimit-limit-requests': '10000',
  'x-ratelimit-remaining-requests': '9999',
  'x-ratelimit-reset-requests': '6ms',
  'x-ratelimit-limit-tokens': '30000000',
  'x-ratelimit-remaining-tokens': '29999000',
  'x-ratelimit-reset-tokens': '2ms',
};

/**
 * The faults that replace the answer with an error status; the others shape how a normal answer is written. Each
 * carries `x-mock-fault: <fault>`, so that a test behind a proxy can tell an error the mock sent from one the proxy made.
 */
const ERROR_ANSWERS: Partial<Record<Fault, JsonAnswer>> = Object.fromEntries(
  Object.entries({
    '401': errorAnswer(401, 'Incorrect API key provided. You can find your API key at https://platform.openai.com/account/api-keys.', 'invalid_request_error', null, 'invalid_api_key'),
    '429': RATE_LIMITED,
    '500': errorAnswer(500, SERVER_ERROR_MESSAGE, 'server_error'),
    '502': errorAnswer(502, 'Bad gateway.', 'server_error'),
    '503': errorAnswer(503, SERVER_ERROR_MESSAGE, 'server_error'),
    '504': errorAnswer(504, 'Gateway timeout.', 'server_error'),
  }).map(([fault, answer]) => [fault, { ...answer, headers: { ...answer.headers, 'x-mock-fault': fault } }]),
);

function isRecord(value: unknown): value is Record<string, unknown> {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

function sha256Hex(text: string): string {
  return createHash('sha256').update(text).digest('hex');
}

/** First 32 bits of a hex hash, used to seed generators. */
function seedOf(hash: string): number {
  return Number.parseInt(hash.slice(0, 8), 16);
}

/** mulberry32: a tiny seeded PRNG, so generated content depends on the request hash alone (tests reuse it). */
export function seededRandom(seed: number): () => number {
  let state = seed >>> 0;
  return () => {
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/** Choice 0 uses the request hash itself; later choices get their own so each choice's words and ids differ. */
function choiceHash(requestHash: string, index: number): string {
  return index === 0 ? requestHash : sha256Hex(`${requestHash}#${index}`);
}

function createdFrom(requestHash: string): number {
  return CREATED_EPOCH_S + (seedOf(requestHash) % 31_536_000);
}

/** The token-ish words of one generated answer; the first body word is offset by choice index so choices never coincide. */
function answerWords(kind: 'answer' | 'completion', requestHash: string, index: number): string[] {
  const random = seededRandom(seedOf(choiceHash(requestHash, index)));
  const bodyWordCount = 6 + Math.floor(random() * 9);
  const words = ['Mock', kind, `${requestHash.slice(0, 8)}:`];
  words.push(WORDS[(seedOf(requestHash) + index) % WORDS.length] ?? 'mock');
  for (let i = 1; i < bodyWordCount; i++) words.push(WORDS[Math.floor(random() * WORDS.length)] ?? 'mock');
  words[words.length - 1] += '.';
  return words;
}

/** Cuts words to the token budget, one word standing for one token. */
function truncateWords(words: string[], maxTokens: number | undefined): { words: string[]; finishReason: 'stop' | 'length' } {
  if (maxTokens === undefined || words.length <= maxTokens) return { words, finishReason: 'stop' };
  return { words: words.slice(0, maxTokens), finishReason: 'length' };
}

/** Roughly four characters per token, never zero for non-empty text. */
function approximateTokens(text: string): number {
  return Math.ceil(text.length / 4);
}

function requireModel(body: Record<string, unknown>): string {
  const model = body.model;
  if (typeof model !== 'string' || model === '') throw new InvalidRequest('you must provide a model parameter', 'model');
  return model;
}

function optionalPositiveInteger(body: Record<string, unknown>, param: string, max = Number.MAX_SAFE_INTEGER): number | undefined {
  const value = body[param];
  if (value === undefined || value === null) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1 || value > max) {
    throw new InvalidRequest(`Invalid '${param}': expected an integer between 1 and ${max}.`, param, 'invalid_value');
  }
  return value;
}

function choiceCount(body: Record<string, unknown>): number {
  return optionalPositiveInteger(body, 'n', MAX_CHOICES) ?? 1;
}

function maxTokensOf(body: Record<string, unknown>): number | undefined {
  return optionalPositiveInteger(body, 'max_completion_tokens') ?? optionalPositiveInteger(body, 'max_tokens');
}

function wantsUsageInStream(body: Record<string, unknown>): boolean {
  return isRecord(body.stream_options) && body.stream_options.include_usage === true;
}

/** Interleaves per-choice frames round-robin, as OpenAI does when n > 1. */
function interleave(framesPerChoice: string[][]): string[] {
  if (framesPerChoice.length === 1) return framesPerChoice[0] ?? [];
  const frames: string[] = [];
  const longest = Math.max(...framesPerChoice.map((choiceFrames) => choiceFrames.length));
  for (let step = 0; step < longest; step++) {
    for (const choiceFrames of framesPerChoice) {
      const frame = choiceFrames[step];
      if (frame !== undefined) frames.push(frame);
    }
  }
  return frames;
}

/** Each word after the first keeps its leading space, so the pieces concatenate back to the content exactly. */
function contentPieces(words: string[]): string[] {
  return words.map((word, i) => (i === 0 ? word : ` ${word}`));
}

interface Usage {
  prompt_tokens: number;
  completion_tokens: number;
  total_tokens: number;
}

function usageOf(promptTokens: number, completionTokens: number): Usage {
  return { prompt_tokens: promptTokens, completion_tokens: completionTokens, total_tokens: promptTokens + completionTokens };
}

/**
 * Fixed opening of every SSE chunk of one answer; each frame only appends its choices. Building it once per request
 * avoids serialising the same id/model/fingerprint for every chunk.
 */
function chunkHead(envelope: string): string {
  return `data: {${envelope},"choices":[`;
}

function chunkTail(includeUsage: boolean): string {
  return includeUsage ? '],"usage":null}\n\n' : ']}\n\n';
}

function usageFrame(head: string, usage: Usage): string {
  return `${head}],"usage":${JSON.stringify(usage)}}\n\n`;
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/chat/completions

interface ToolCall {
  id: string;
  type: 'function';
  function: { name: string; arguments: string };
}

interface ChatChoicePlan {
  index: number;
  /** Answer words when the choice is text, null when it is a tool call. */
  words: string[] | null;
  toolCall: ToolCall | null;
  finishReason: 'stop' | 'length' | 'tool_calls';
  completionTokens: number;
}

interface RequestedTool {
  name: string;
  parameters: unknown;
}

function promptTokensOfMessages(messages: unknown[]): number {
  // Each message costs a few tokens of framing on top of its text, as in OpenAI's accounting.
  let tokens = 3;
  for (const message of messages) {
    tokens += 3;
    if (!isRecord(message)) continue;
    const content = message.content;
    if (typeof content === 'string') {
      tokens += approximateTokens(content);
    } else if (Array.isArray(content)) {
      for (const part of content) {
        if (isRecord(part) && typeof part.text === 'string') tokens += approximateTokens(part.text);
      }
    }
  }
  return tokens;
}

/** The function the model must "call", or null when the answer should be plain text. */
function requestedTool(body: Record<string, unknown>, messages: unknown[]): RequestedTool | null {
  const tools = body.tools;
  if (!Array.isArray(tools) || tools.length === 0) return null;
  const toolChoice = body.tool_choice;
  if (toolChoice === 'none') return null;
  // After a tool result the conversation continues in text, as a real model would.
  const lastMessage = messages[messages.length - 1];
  if (isRecord(lastMessage) && lastMessage.role === 'tool') return null;

  const functions = tools.flatMap((tool): RequestedTool[] =>
    isRecord(tool) && isRecord(tool.function) && typeof tool.function.name === 'string' ? [{ name: tool.function.name, parameters: tool.function.parameters }] : [],
  );
  const forcedName = isRecord(toolChoice) && isRecord(toolChoice.function) && typeof toolChoice.function.name === 'string' ? toolChoice.function.name : undefined;
  if (forcedName === undefined) return functions[0] ?? null;
  // A forced function missing from `tools` is still called by name; rejecting it is the real API's job, not the mock's.
  return functions.find((fn) => fn.name === forcedName) ?? { name: forcedName, parameters: undefined };
}

/** A value fitting a JSON-schema fragment, picked by the seeded generator so arguments are deterministic. */
function sampleForSchema(schema: unknown, random: () => number, shortHash: string): unknown {
  if (!isRecord(schema)) return null;
  if (Array.isArray(schema.enum) && schema.enum.length > 0) return schema.enum[Math.floor(random() * schema.enum.length)];
  const type = Array.isArray(schema.type) ? schema.type.find((t) => t !== 'null') : schema.type;
  switch (type) {
    case 'string':
      return `mock-${shortHash}`;
    case 'integer':
    case 'number':
      return Math.floor(random() * 100);
    case 'boolean':
      return random() < 0.5;
    case 'array':
      return [];
    case 'object':
      return {};
    default:
      return null;
  }
}

function toolArguments(parameters: unknown, random: () => number, shortHash: string): string {
  const properties = isRecord(parameters) && isRecord(parameters.properties) ? parameters.properties : {};
  const args: Record<string, unknown> = {};
  for (const [name, schema] of Object.entries(properties)) args[name] = sampleForSchema(schema, random, shortHash);
  return JSON.stringify(args);
}

function planChatChoices(requestHash: string, n: number, maxTokens: number | undefined, tool: RequestedTool | null): ChatChoicePlan[] {
  const choices: ChatChoicePlan[] = [];
  for (let index = 0; index < n; index++) {
    if (tool !== null) {
      const hash = choiceHash(requestHash, index);
      const args = toolArguments(tool.parameters, seededRandom(seedOf(hash) ^ 0x9e3779b9), hash.slice(0, 8));
      choices.push({
        index,
        words: null,
        toolCall: { id: `call_${hash.slice(8, 32)}`, type: 'function', function: { name: tool.name, arguments: args } },
        finishReason: 'tool_calls',
        completionTokens: approximateTokens(tool.name) + approximateTokens(args) + 3,
      });
    } else {
      const { words, finishReason } = truncateWords(answerWords('answer', requestHash, index), maxTokens);
      choices.push({ index, words, toolCall: null, finishReason, completionTokens: words.length });
    }
  }
  return choices;
}

function chatCompletion(body: Record<string, unknown>, requestHash: string): Answer {
  const model = requireModel(body);
  const messages = body.messages;
  if (!Array.isArray(messages)) throw new InvalidRequest("Missing required parameter: 'messages'.", 'messages', 'missing_required_parameter');
  if (messages.length === 0) {
    throw new InvalidRequest("Invalid 'messages': empty array. Expected an array with minimum length 1, but got an empty array instead.", 'messages', 'empty_array');
  }
  const choices = planChatChoices(requestHash, choiceCount(body), maxTokensOf(body), requestedTool(body, messages));
  const id = `chatcmpl-${requestHash.slice(0, 29)}`;
  const created = createdFrom(requestHash);
  const usage = usageOf(
    promptTokensOfMessages(messages),
    choices.reduce((sum, choice) => sum + choice.completionTokens, 0),
  );

  if (body.stream === true) return { kind: 'stream', frames: chatStreamFrames(id, created, model, choices, usage, wantsUsageInStream(body)) };

  const completion = {
    id,
    object: 'chat.completion',
    created,
    model,
    choices: choices.map((choice) => ({
      index: choice.index,
      message:
        choice.toolCall === null
          ? { role: 'assistant', content: (choice.words ?? []).join(' '), refusal: null }
          : { role: 'assistant', content: null, tool_calls: [choice.toolCall], refusal: null },
      logprobs: null,
      finish_reason: choice.finishReason,
    })),
    usage,
    system_fingerprint: SYSTEM_FINGERPRINT,
  };
  return { kind: 'json', status: 200, body: JSON.stringify(completion) };
}

function chatStreamFrames(id: string, created: number, model: string, choices: ChatChoicePlan[], usage: Usage, includeUsage: boolean): string[] {
  const head = chunkHead(
    `"id":"${id}","object":"chat.completion.chunk","created":${created},"model":${JSON.stringify(model)},"system_fingerprint":"${SYSTEM_FINGERPRINT}"`,
  );
  const tail = chunkTail(includeUsage);
  const framesPerChoice = choices.map((choice) => {
    const frame = (delta: object, finishReason: string | null): string =>
      head + JSON.stringify({ index: choice.index, delta, logprobs: null, finish_reason: finishReason }) + tail;
    const frames: string[] = [];
    if (choice.toolCall !== null) {
      const { id: callId, function: fn } = choice.toolCall;
      frames.push(frame({ role: 'assistant', content: null, tool_calls: [{ index: 0, id: callId, type: 'function', function: { name: fn.name, arguments: '' } }], refusal: null }, null));
      for (let at = 0; at < fn.arguments.length; at += TOOL_ARGUMENT_FRAGMENT_CHARS) {
        frames.push(frame({ tool_calls: [{ index: 0, function: { arguments: fn.arguments.slice(at, at + TOOL_ARGUMENT_FRAGMENT_CHARS) } }] }, null));
      }
    } else {
      frames.push(frame({ role: 'assistant', content: '', refusal: null }, null));
      for (const piece of contentPieces(choice.words ?? [])) frames.push(frame({ content: piece }, null));
    }
    frames.push(frame({}, choice.finishReason));
    return frames;
  });
  const frames = interleave(framesPerChoice);
  if (includeUsage) frames.push(usageFrame(head, usage));
  frames.push(DONE_FRAME);
  return frames;
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/completions

/** Prompts as the legacy endpoint accepts them: a string, strings, a token array, or token arrays. */
function promptsOf(prompt: unknown): { count: number; tokens: number } {
  if (prompt === undefined || prompt === null) return { count: 1, tokens: 1 };
  if (typeof prompt === 'string') return { count: 1, tokens: Math.max(1, approximateTokens(prompt)) };
  if (Array.isArray(prompt) && prompt.length > 0) {
    if (prompt.every((item) => typeof item === 'number')) return { count: 1, tokens: prompt.length };
    let tokens = 0;
    for (const item of prompt) {
      if (typeof item === 'string') tokens += Math.max(1, approximateTokens(item));
      else if (Array.isArray(item) && item.every((token) => typeof token === 'number')) tokens += item.length;
      else throw new InvalidRequest("Invalid 'prompt': expected a string, an array of strings, or token arrays.", 'prompt', 'invalid_type');
    }
    return { count: prompt.length, tokens };
  }
  throw new InvalidRequest("Invalid 'prompt': expected a string, an array of strings, or token arrays.", 'prompt', 'invalid_type');
}

function textCompletion(body: Record<string, unknown>, requestHash: string): Answer {
  const model = requireModel(body);
  const prompts = promptsOf(body.prompt);
  const n = choiceCount(body);
  const maxTokens = maxTokensOf(body);
  // OpenAI orders choices prompt-major: all n choices of prompt 0, then those of prompt 1, ...
  const choices = Array.from({ length: prompts.count * n }, (_, index) => ({ index, ...truncateWords(answerWords('completion', requestHash, index), maxTokens) }));
  const id = `cmpl-${requestHash.slice(0, 29)}`;
  const created = createdFrom(requestHash);
  const usage = usageOf(prompts.tokens, choices.reduce((sum, choice) => sum + choice.words.length, 0));

  if (body.stream === true) {
    const includeUsage = wantsUsageInStream(body);
    const head = chunkHead(`"id":"${id}","object":"text_completion","created":${created},"model":${JSON.stringify(model)}`);
    const tail = chunkTail(includeUsage);
    const framesPerChoice = choices.map((choice) => {
      const frame = (text: string, finishReason: string | null): string =>
        head + JSON.stringify({ text, index: choice.index, logprobs: null, finish_reason: finishReason }) + tail;
      const frames = contentPieces(choice.words).map((piece) => frame(piece, null));
      frames.push(frame('', choice.finishReason));
      return frames;
    });
    const frames = interleave(framesPerChoice);
    if (includeUsage) frames.push(usageFrame(head, usage));
    frames.push(DONE_FRAME);
    return { kind: 'stream', frames };
  }

  const completion = {
    id,
    object: 'text_completion',
    created,
    model,
    choices: choices.map((choice) => ({ text: choice.words.join(' '), index: choice.index, logprobs: null, finish_reason: choice.finishReason })),
    usage,
  };
  return { kind: 'json', status: 200, body: JSON.stringify(completion) };
}

// ---------------------------------------------------------------------------------------------------------------------
// POST /v1/embeddings

const INVALID_EMBEDDING_INPUT = "Invalid 'input': expected a non-empty string, array of non-empty strings, token array, or array of token arrays.";

/** One hashing key and token count per embedded item. */
function embeddingItems(input: unknown): { key: string; tokens: number }[] {
  if (typeof input === 'string' && input !== '') return [{ key: input, tokens: Math.max(1, approximateTokens(input)) }];
  if (!Array.isArray(input) || input.length === 0) throw new InvalidRequest(INVALID_EMBEDDING_INPUT, 'input', 'invalid_value');
  // A flat number array is a single tokenised input, not many inputs.
  if (input.every((item) => typeof item === 'number')) return [{ key: `tokens:${input.join(',')}`, tokens: input.length }];
  return input.map((item) => {
    if (typeof item === 'string' && item !== '') return { key: item, tokens: Math.max(1, approximateTokens(item)) };
    if (Array.isArray(item) && item.length > 0 && item.every((token) => typeof token === 'number')) return { key: `tokens:${item.join(',')}`, tokens: item.length };
    throw new InvalidRequest(INVALID_EMBEDDING_INPUT, 'input', 'invalid_value');
  });
}

/** A unit vector seeded by the item's hash; prefixes of longer vectors point the same way, like Matryoshka embeddings. */
function embeddingVector(key: string, dimensions: number): Float32Array {
  const random = seededRandom(seedOf(sha256Hex(key)));
  const vector = new Float32Array(dimensions);
  let squaredNorm = 0;
  for (let i = 0; i < dimensions; i++) {
    const component = random() * 2 - 1;
    vector[i] = component;
    squaredNorm += component * component;
  }
  const norm = Math.sqrt(squaredNorm) || 1;
  for (let i = 0; i < dimensions; i++) vector[i] = (vector[i] ?? 0) / norm;
  return vector;
}

/** Little-endian float32 bytes, base64-encoded, exactly what the real API sends for encoding_format 'base64'. */
function base64OfVector(vector: Float32Array): string {
  const bytes = Buffer.allocUnsafe(vector.length * 4);
  for (let i = 0; i < vector.length; i++) bytes.writeFloatLE(vector[i] ?? 0, i * 4);
  return bytes.toString('base64');
}

function embeddings(body: Record<string, unknown>): Answer {
  const model = requireModel(body);
  const items = embeddingItems(body.input);
  if (items.length > MAX_EMBEDDING_ITEMS) {
    throw new InvalidRequest(`Invalid 'input': maximum ${MAX_EMBEDDING_ITEMS} items per request, got ${items.length}.`, 'input', 'invalid_value');
  }
  const longest = Math.max(...items.map((item) => item.tokens));
  if (longest > MAX_EMBEDDING_ITEM_TOKENS) {
    // OpenAI's wording for an input longer than the model's context.
    throw new InvalidRequest(
      `This model's maximum context length is ${MAX_EMBEDDING_ITEM_TOKENS} tokens, however you requested ${longest} tokens (${longest} in your prompt; 0 for the completion). Please reduce your prompt; or completion length.`,
    );
  }
  const dimensions = optionalPositiveInteger(body, 'dimensions', MAX_EMBEDDING_DIMENSIONS) ?? DEFAULT_EMBEDDING_DIMENSIONS;
  const format = body.encoding_format ?? 'float';
  if (format !== 'float' && format !== 'base64') {
    throw new InvalidRequest("Invalid 'encoding_format': expected 'float' or 'base64'.", 'encoding_format', 'invalid_value');
  }
  const promptTokens = items.reduce((sum, item) => sum + item.tokens, 0);
  if (promptTokens > MAX_EMBEDDING_REQUEST_TOKENS) {
    return errorAnswer(400, `Requested ${promptTokens} tokens, max ${MAX_EMBEDDING_REQUEST_TOKENS} tokens per request`, 'max_tokens_per_request', null, 'max_tokens_per_request');
  }
  const data = items.map((item, index) => {
    const vector = embeddingVector(item.key, dimensions);
    // Floats are emitted as the exact float32 values so 'float' and decoded 'base64' answers are identical.
    return { object: 'embedding', index, embedding: format === 'base64' ? base64OfVector(vector) : Array.from(vector) };
  });
  return { kind: 'json', status: 200, body: JSON.stringify({ object: 'list', data, model, usage: { prompt_tokens: promptTokens, total_tokens: promptTokens } }) };
}

// ---------------------------------------------------------------------------------------------------------------------
// Routing

const MODELS_PREFIX = '/v1/models/';

function jsonBodyOf(rawBody: string): Record<string, unknown> {
  let parsed: unknown;
  try {
    // The wire boundary: JSON.parse yields `any`, narrowed to a record right below.
    parsed = JSON.parse(rawBody);
  } catch {
    throw new InvalidRequest(
      "We could not parse the JSON body of your request. (HINT: This likely means you aren't using your HTTP library correctly. The OpenAI API expects a JSON payload, but what was sent was not valid JSON.)",
    );
  }
  if (!isRecord(parsed)) throw new InvalidRequest('The request body must be a JSON object.');
  return parsed;
}

/** `routeKey` is "METHOD /path", already built for the stats, so the switch needs no further string work. */
function route(routeKey: string, method: string, path: string, rawBody: string): Answer {
  try {
    switch (routeKey) {
      case 'POST /v1/chat/completions':
        return chatCompletion(jsonBodyOf(rawBody), sha256Hex(rawBody));
      case 'POST /v1/completions':
        return textCompletion(jsonBodyOf(rawBody), sha256Hex(rawBody));
      case 'POST /v1/embeddings':
        return embeddings(jsonBodyOf(rawBody));
      case 'GET /v1/models':
        return { kind: 'json', status: 200, body: MODELS_LIST_BODY };
    }
    if (method === 'GET' && path.startsWith(MODELS_PREFIX)) {
      let modelId = path.slice(MODELS_PREFIX.length);
      try {
        modelId = decodeURIComponent(modelId);
      } catch {
        // A malformed escape cannot name a known model; the raw text goes into the 404 message.
      }
      const body = MODEL_BODY_BY_ID.get(modelId);
      if (body !== undefined) return { kind: 'json', status: 200, body };
      return errorAnswer(404, `The model \`${modelId}\` does not exist or you do not have access to it.`, 'invalid_request_error', null, 'model_not_found');
    }
    return { kind: 'json', status: 404, body: invalidUrlBody(method, path) };
  } catch (error) {
    if (error instanceof InvalidRequest) return errorAnswer(400, error.message, 'invalid_request_error', error.param, error.code);
    // A bug in the mock must not pass for a deliberate '500' fault, hence its own error type.
    return errorAnswer(500, `mock upstream failed: ${error instanceof Error ? error.message : String(error)}`, 'mock_internal_error');
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Server

/** One non-control request in flight: its response and the timers that must die with it. */
interface Exchange {
  res: ServerResponse;
  timers: Set<NodeJS.Timeout>;
  closed: boolean;
  /** Set when the mock itself cuts the connection (broken-stream, shutdown), which is not a client abort. */
  closedByMock: boolean;
  /** Holds one of the maxConcurrent turns (false while waiting for one). */
  inProgress: boolean;
}

interface QueuedFault {
  fault: Fault;
  remaining: number;
}

interface Delays {
  latencyMs: number;
  chunkDelayMs: number;
}

function isFault(value: unknown): value is Fault {
  return typeof value === 'string' && FAULTS.has(value);
}

/** Draws a fault (or none) per request with the given probabilities, from a seeded PRNG. */
function faultDrawer(rates: Partial<Record<Fault, number>>, seed: number): { draw(): Fault | undefined; reseed(): void } {
  const table: [Fault, number][] = [];
  let total = 0;
  for (const [fault, rate] of Object.entries(rates)) {
    if (!isFault(fault)) throw new TypeError(`unknown fault ${fault} in faultRates; expected one of ${[...FAULTS].join(', ')}`);
    if (!(typeof rate === 'number' && Number.isFinite(rate) && rate >= 0)) throw new RangeError(`faultRates.${fault} must be a number >= 0, got ${rate}`);
    total += rate;
    table.push([fault, total]);
  }
  if (total > 1 + 1e-9) throw new RangeError(`faultRates add up to ${total}, more than 1`);
  let random = seededRandom(seed);
  return {
    draw: () => {
      if (table.length === 0) return undefined;
      const x = random();
      return table.find(([, upTo]) => x < upTo)?.[0];
    },
    reseed: () => {
      random = seededRandom(seed);
    },
  };
}

function assertDelay(name: string, value: number | undefined): void {
  if (value !== undefined && !(Number.isFinite(value) && value >= 0)) throw new RangeError(`${name} must be a finite number >= 0, got ${value}`);
}

/** A per-request delay header, or the default; a malformed value is a test bug and is reported, not ignored. */
function delayFromHeader(value: string | string[] | undefined, fallback: number, name: string): number {
  if (value === undefined) return fallback;
  const delay = typeof value === 'string' ? Number(value) : Number.NaN;
  if (!(Number.isFinite(delay) && delay >= 0)) throw new InvalidRequest(`Invalid ${name} header: expected a number of milliseconds >= 0.`);
  return delay;
}

/** Runs `step` after `ms` unless the exchange closes first; 0 runs it now, so the zero-latency path creates no timer. */
function later(exchange: Exchange, ms: number, step: () => void): void {
  if (ms <= 0) {
    step();
    return;
  }
  const timer = setTimeout(() => {
    exchange.timers.delete(timer);
    if (!exchange.closed) step();
  }, ms);
  exchange.timers.add(timer);
}

function cancelTimers(exchange: Exchange): void {
  for (const timer of exchange.timers) clearTimeout(timer);
  exchange.timers.clear();
}

function cutConnection(exchange: Exchange): void {
  exchange.closedByMock = true;
  exchange.res.destroy();
}

function sendJson(res: ServerResponse, status: number, body: string): void {
  res.writeHead(status, { ...JSON_HEADERS, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function writeJsonAnswer(exchange: Exchange, answer: Extract<Answer, { kind: 'json' }>, fault: Fault | undefined): void {
  const { res } = exchange;
  if (fault === 'broken-stream') {
    // The full content-length is announced so the client can tell the body was cut short.
    const bytes = Buffer.from(answer.body);
    res.writeHead(answer.status, { ...JSON_HEADERS, ...answer.headers, 'content-length': bytes.length });
    res.write(bytes.subarray(0, bytes.length >> 1), () => cutConnection(exchange));
    return;
  }
  const body = fault === 'garbage-stream' ? '{not json' : answer.body;
  res.writeHead(answer.status, { ...JSON_HEADERS, ...answer.headers, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

function writeStreamAnswer(exchange: Exchange, frames: string[], chunkDelayMs: number, fault: Fault | undefined): void {
  let plan: (string | Buffer)[] = frames;
  let cutAtEnd = false;
  if (fault === 'broken-stream') {
    plan = frames.slice(0, 2);
    cutAtEnd = true;
  } else if (fault === 'garbage-stream') {
    plan = [frames[0] ?? '', GARBAGE_FRAME, DONE_FRAME];
  } else if (fault === 'no-done') {
    plan = frames.slice(0, -1);
  } else if (fault === 'error-event') {
    plan = [...frames.slice(0, 2), ERROR_EVENT_FRAME];
  } else if (fault === 'split-stream') {
    const bytes = Buffer.from(frames.join(''));
    plan = [];
    // Pieces are bytes, not characters: a multi-byte character may be cut in two.
    for (let at = 0; at < bytes.length; at += SPLIT_PIECE_BYTES) plan.push(bytes.subarray(at, at + SPLIT_PIECE_BYTES));
    chunkDelayMs = Math.max(chunkDelayMs, SPLIT_PIECE_DELAY_MS);
  }

  const { res } = exchange;
  res.writeHead(200, SSE_HEADERS);
  const finish = (lastPiece: string | Buffer): void => {
    if (cutAtEnd) res.write(lastPiece, () => cutConnection(exchange));
    else res.end(lastPiece);
  };
  if (chunkDelayMs <= 0) {
    // Nothing to pace, so one write carries the whole answer.
    finish(plan.join(''));
    return;
  }
  let next = 0;
  const writeNext = (): void => {
    const frame = plan[next++] ?? '';
    if (next >= plan.length) finish(frame);
    else {
      res.write(frame);
      later(exchange, chunkDelayMs, writeNext);
    }
  };
  writeNext();
}

function readBody(req: IncomingMessage, done: (body: string) => void): void {
  const chunks: Buffer[] = [];
  req.on('data', (chunk: Buffer) => chunks.push(chunk));
  req.on('end', () => done(chunks.length === 1 ? (chunks[0] as Buffer).toString('utf8') : Buffer.concat(chunks).toString('utf8')));
  // A client that hangs up mid-body makes the request emit 'error'; the response's 'close' does the bookkeeping.
  req.on('error', () => {});
}

function controlBody(rawBody: string): Record<string, unknown> {
  return rawBody === '' ? {} : jsonBodyOf(rawBody);
}

export async function startMockUpstream(options: MockUpstreamOptions = {}): Promise<MockUpstream> {
  const host = options.host ?? '127.0.0.1';
  assertDelay('latencyMs', options.latencyMs);
  assertDelay('chunkDelayMs', options.chunkDelayMs);
  const { maxConcurrent } = options;
  if (maxConcurrent !== undefined && !(Number.isInteger(maxConcurrent) && maxConcurrent >= 1)) throw new RangeError(`maxConcurrent must be an integer >= 1, got ${maxConcurrent}`);
  const startupDelays: Delays = { latencyMs: options.latencyMs ?? 0, chunkDelayMs: options.chunkDelayMs ?? 0 };
  const randomFaults = faultDrawer(options.faultRates ?? {}, options.faultSeed ?? 1);
  let faultCounts = new Map<string, number>();
  let delays: Delays = { ...startupDelays };

  let requestCount = 0;
  let abortedCount = 0;
  let byRoute = new Map<string, number>();
  let recorded: RecordedRequest[] = [];
  let faultQueue: QueuedFault[] = [];
  const exchanges = new Set<Exchange>();
  let shuttingDown = false;
  // The maxConcurrent turns: requests in progress, and those waiting for a turn in arrival order.
  let inProgress = 0;
  let peakInProgress = 0;
  let waiting: { exchange: Exchange; start: () => void }[] = [];

  const stats = (): MockUpstreamStats => ({
    requests: requestCount, byRoute: Object.fromEntries(byRoute), aborted: abortedCount, inFlight: exchanges.size, waiting: waiting.length, peakInProgress,
    faults: Object.fromEntries(faultCounts),
  });

  const begin = (exchange: Exchange, start: () => void): void => {
    exchange.inProgress = true;
    inProgress++;
    peakInProgress = Math.max(peakInProgress, inProgress);
    start();
  };

  /** Starts `start` now, or once a turn is free when maxConcurrent requests are already in progress. */
  const takeTurn = (exchange: Exchange, start: () => void): void => {
    if (maxConcurrent === undefined || inProgress < maxConcurrent) begin(exchange, start);
    else waiting.push({ exchange, start });
  };

  const endTurn = (exchange: Exchange): void => {
    if (!exchange.inProgress) {
      waiting = waiting.filter((entry) => entry.exchange !== exchange);
      return;
    }
    exchange.inProgress = false;
    inProgress--;
    const next = waiting.shift();
    if (next !== undefined && !shuttingDown) begin(next.exchange, next.start);
  };

  const reset = (): void => {
    requestCount = 0;
    abortedCount = 0;
    byRoute = new Map();
    peakInProgress = inProgress;
    recorded = [];
    faultQueue = [];
    faultCounts = new Map();
    randomFaults.reseed();
    delays = { ...startupDelays };
  };

  const setDefaults = (o: { latencyMs?: number; chunkDelayMs?: number }): void => {
    assertDelay('latencyMs', o.latencyMs);
    assertDelay('chunkDelayMs', o.chunkDelayMs);
    delays = { latencyMs: o.latencyMs ?? delays.latencyMs, chunkDelayMs: o.chunkDelayMs ?? delays.chunkDelayMs };
  };

  const failNext = (fault: Fault, count = 1): void => {
    if (!isFault(fault)) throw new TypeError(`unknown fault ${String(fault)}; expected one of ${[...FAULTS].join(', ')}`);
    if (!Number.isInteger(count) || count < 1) throw new RangeError(`count must be a positive integer, got ${count}`);
    faultQueue.push({ fault, remaining: count });
  };

  const takeQueuedFault = (): Fault | undefined => {
    const head = faultQueue[0];
    if (head === undefined) return undefined;
    if (--head.remaining === 0) faultQueue.shift();
    return head.fault;
  };

  const handleControl = (req: IncomingMessage, res: ServerResponse, method: string, path: string): void => {
    readBody(req, (rawBody) => {
      try {
        switch (`${method} ${path}`) {
          case 'GET /mock/stats':
            return sendJson(res, 200, JSON.stringify(stats()));
          case 'GET /mock/requests':
            return sendJson(res, 200, JSON.stringify(recorded));
          case 'POST /mock/reset':
            reset();
            return sendJson(res, 200, '{"ok":true}');
          case 'POST /mock/fail-next': {
            const body = controlBody(rawBody);
            const count = body.count ?? 1;
            if (!isFault(body.fault)) throw new InvalidRequest(`Invalid 'fault': expected one of ${[...FAULTS].join(', ')}.`, 'fault');
            if (typeof count !== 'number' || !Number.isInteger(count) || count < 1) throw new InvalidRequest("Invalid 'count': expected a positive integer.", 'count');
            failNext(body.fault, count);
            return sendJson(res, 200, '{"ok":true}');
          }
          case 'POST /mock/defaults': {
            const body = controlBody(rawBody);
            const latencyMs = body.latencyMs ?? undefined;
            const chunkDelayMs = body.chunkDelayMs ?? undefined;
            if ((latencyMs !== undefined && typeof latencyMs !== 'number') || (chunkDelayMs !== undefined && typeof chunkDelayMs !== 'number')) {
              throw new InvalidRequest("'latencyMs' and 'chunkDelayMs' must be numbers.");
            }
            setDefaults({ latencyMs, chunkDelayMs });
            return sendJson(res, 200, JSON.stringify(delays));
          }
          default:
            return sendJson(res, 404, invalidUrlBody(method, path));
        }
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        sendJson(res, 400, errorBody(message, 'invalid_request_error', error instanceof InvalidRequest ? error.param : null, null));
      }
    });
  };

  const server = createServer((req, res) => {
    const method = req.method ?? 'GET';
    const url = req.url ?? '/';
    const queryAt = url.indexOf('?');
    const path = queryAt === -1 ? url : url.slice(0, queryAt);
    if (path.startsWith('/mock/')) {
      handleControl(req, res, method, path);
      return;
    }

    const routeKey = `${method} ${path}`;
    requestCount++;
    byRoute.set(routeKey, (byRoute.get(routeKey) ?? 0) + 1);
    const exchange: Exchange = { res, timers: new Set(), closed: false, closedByMock: false, inProgress: false };
    exchanges.add(exchange);
    res.on('close', () => {
      exchange.closed = true;
      exchanges.delete(exchange);
      cancelTimers(exchange);
      endTurn(exchange);
      if (!res.writableFinished && !exchange.closedByMock && !shuttingDown) abortedCount++;
    });

    // Faults are taken on arrival so queued faults hit requests in the order they came in, whatever their body sizes.
    // A random fault is drawn for every /v1 request, used or not, so that the sequence of draws never depends on the others.
    const drawnFault = path.startsWith('/v1/') ? randomFaults.draw() : undefined;
    const plannedFault = path.startsWith('/v1/') ? takeQueuedFault() ?? drawnFault : undefined;
    const headerFault = req.headers['x-mock-fault'];

    takeTurn(exchange, () => readBody(req, (rawBody) => {
      recorded.push({ method, path: url, headers: req.headers, body: rawBody });
      if (recorded.length > RECORDED_REQUEST_LIMIT) recorded.shift();

      let fault: Fault | undefined;
      let latencyMs: number;
      let chunkDelayMs: number;
      const retryAfter = req.headers['x-mock-retry-after'];
      try {
        // A fault named in the header overrides the queued (or drawn) one; the queued one is still used up by this request.
        if (headerFault === undefined) fault = plannedFault;
        else if (isFault(headerFault)) fault = headerFault;
        else throw new InvalidRequest(`Invalid x-mock-fault header: expected one of ${[...FAULTS].join(', ')}.`);
        if (retryAfter !== undefined && (typeof retryAfter !== 'string' || retryAfter.trim() === '')) throw new InvalidRequest('Invalid x-mock-retry-after header: expected a non-empty value.');
        latencyMs = delayFromHeader(req.headers['x-mock-latency-ms'], delays.latencyMs, 'x-mock-latency-ms');
        chunkDelayMs = delayFromHeader(req.headers['x-mock-chunk-delay-ms'], delays.chunkDelayMs, 'x-mock-chunk-delay-ms');
      } catch (error) {
        const message = error instanceof Error ? error.message : String(error);
        sendJson(res, 400, errorBody(message, 'invalid_request_error', null, null));
        return;
      }

      if (fault !== undefined) faultCounts.set(fault, (faultCounts.get(fault) ?? 0) + 1);
      // A stalled request keeps its socket open until the client (or close()) gives up.
      if (fault === 'stall') return;

      later(exchange, latencyMs, () => {
        const failure = fault === undefined ? undefined : ERROR_ANSWERS[fault];
        // x-mock-retry-after replaces (or adds) the Retry-After of an error fault, seconds or an HTTP date as given.
        let answer = failure === undefined ? route(routeKey, method, path, rawBody)
          : retryAfter === undefined ? failure : { ...failure, headers: { ...failure.headers, 'retry-after': retryAfter as string } };
        if (req.headers['x-mock-ratelimit-headers'] === 'on' && answer.kind === 'json' && answer.status < 400) {
          answer = { ...answer, headers: { ...answer.headers, ...UPSTREAM_LIMIT_HEADERS } };
        }
        if (answer.kind === 'stream') writeStreamAnswer(exchange, answer.frames, chunkDelayMs, fault);
        else writeJsonAnswer(exchange, answer, fault);
      });
    }));
  });

  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen(options.port ?? 0, host, () => {
      server.off('error', reject);
      resolve();
    });
  });

  const { port } = server.address() as AddressInfo;
  // A wildcard bind is reachable on loopback; clients need a concrete address in the URL.
  const urlHost = host === '0.0.0.0' || host === '::' || host === '' ? '127.0.0.1' : host.includes(':') ? `[${host}]` : host;
  const url = `http://${urlHost}:${port}`;

  let closing: Promise<void> | undefined;
  const close = (): Promise<void> => {
    closing ??= new Promise<void>((resolve, reject) => {
      shuttingDown = true;
      waiting = [];
      for (const exchange of exchanges) {
        exchange.closed = true;
        exchange.closedByMock = true;
        cancelTimers(exchange);
      }
      // Their responses report 'close' only after the sockets go, possibly after the server's own close; the mock is done with them now.
      exchanges.clear();
      server.close((error) => (error ? reject(error) : resolve()));
      server.closeAllConnections();
    });
    return closing;
  };

  return {
    url,
    baseURL: `${url}/v1`,
    stats,
    requests: () => recorded.slice(),
    reset,
    setDefaults,
    failNext,
    close,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Command line: `tsx loadtest/mock-upstream.ts --port 9090 --latency-ms 20 [--max-concurrent 8] [--fault-rates 503=0.04,stall=0.01 --fault-seed 7]`

function numberArg(name: string, raw: string | undefined, fallback: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value < 0) throw new RangeError(`--${name} must be a number >= 0, got '${raw}'`);
  return value;
}

/** `503=0.04,stall=0.01` → { '503': 0.04, stall: 0.01 }; the mock checks the names and the sum. */
function faultRatesArg(raw: string | undefined): Partial<Record<Fault, number>> {
  if (raw === undefined || raw.trim() === '') return {};
  return Object.fromEntries(raw.split(',').map((pair) => {
    const [fault = '', rate] = pair.split('=', 2).map((part) => part.trim());
    return [fault, numberArg(`fault-rates ${fault}`, rate, Number.NaN)];
  }));
}

async function main(): Promise<void> {
  const { values } = parseArgs({
    options: {
      port: { type: 'string' },
      host: { type: 'string' },
      'latency-ms': { type: 'string' },
      'chunk-delay-ms': { type: 'string' },
      'max-concurrent': { type: 'string' },
      'fault-rates': { type: 'string' },
      'fault-seed': { type: 'string' },
    },
  });
  const maxConcurrent = values['max-concurrent'] === undefined ? undefined : numberArg('max-concurrent', values['max-concurrent'], 0);
  const mock = await startMockUpstream({
    host: values.host ?? '127.0.0.1',
    port: numberArg('port', values.port ?? process.env.MOCK_PORT, 9090),
    latencyMs: numberArg('latency-ms', values['latency-ms'], 0),
    chunkDelayMs: numberArg('chunk-delay-ms', values['chunk-delay-ms'], 0),
    ...(maxConcurrent === undefined ? {} : { maxConcurrent }),
    faultRates: faultRatesArg(values['fault-rates']),
    faultSeed: numberArg('fault-seed', values['fault-seed'], 1),
  });
  console.log(`mock upstream listening on ${mock.baseURL}`);
  const stop = (): void => {
    mock.close().catch((error: unknown) => {
      console.error('mock upstream failed to close:', error);
      process.exitCode = 1;
    });
  };
  process.once('SIGTERM', stop);
  process.once('SIGINT', stop);
}

// Only when this file is the entry point; under vitest argv[1] is vitest's own script, so importing never starts a server.
const entryScript = process.argv[1];
if (entryScript !== undefined && import.meta.url === pathToFileURL(entryScript).href) {
  main().catch((error: unknown) => {
    console.error(error instanceof Error ? error.message : error);
    process.exitCode = 1;
  });
}
