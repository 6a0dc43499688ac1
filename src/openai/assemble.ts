// Turns a streamed OpenAI answer, fed as raw SSE bytes while it passes through, into the non-streaming response
// object OpenAI would have returned for the same request: the form a cache entry is stored in.
import { isRecord } from './wire.js';

export type CompletionRoute = 'chat.completions' | 'completions';

const LF = 0x0a;
const CR = 0x0d;
const COLON = 0x3a;
/** Nearly every line OpenAI sends starts so; such a line is decoded straight into its value. */
const DATA_FIELD = Buffer.from('data: ');

const CHUNK_OBJECT: Record<CompletionRoute, string> = {
  'chat.completions': 'chat.completion.chunk',
  completions: 'text_completion',
};

/** Delta fields this module knows how to merge; any other non-null field would be lost, so such a stream is not stored. */
const MERGED_DELTA_FIELDS: ReadonlySet<string> = new Set(['role', 'content', 'refusal', 'tool_calls', 'function_call', 'annotations']);
const COMPLETION_LOGPROB_FIELDS = ['tokens', 'token_logprobs', 'top_logprobs', 'text_offset'] as const;
type CompletionLogprobField = (typeof COMPLETION_LOGPROB_FIELDS)[number];

interface ToolCallDraft {
  id: string | undefined;
  type: string | undefined;
  name: string | undefined;
  arguments: string;
}

interface FunctionCallDraft {
  name: string | undefined;
  arguments: string;
}

interface ChatChoiceDraft {
  role: string | undefined;
  /** null until a delta carries a string, so a pure tool-call message keeps `content: null` as OpenAI sends it. */
  content: string | null;
  refusal: string | null;
  toolCalls: Map<number, ToolCallDraft> | undefined;
  functionCall: FunctionCallDraft | undefined;
  annotations: unknown[] | undefined;
  finishReason: string | undefined;
  /** False until a chunk carries a logprobs object; the arrays stay null until a chunk carries one of them. */
  logprobsSeen: boolean;
  contentLogprobs: unknown[] | null;
  refusalLogprobs: unknown[] | null;
}

interface TextChoiceDraft {
  text: string;
  finishReason: string | undefined;
  logprobs: Record<CompletionLogprobField, unknown[] | null> | undefined;
}

/** Envelope fields copied from the first chunk that carries them, in the order OpenAI writes them. */
const ENVELOPE_FIELDS = ['id', 'created', 'model', 'service_tier', 'system_fingerprint'] as const;
type EnvelopeField = (typeof ENVELOPE_FIELDS)[number];


function isChoiceIndex(value: unknown): value is number {
  return typeof value === 'number' && Number.isInteger(value) && value >= 0;
}

function appendAll(target: unknown[], items: unknown[]): void {
  // A loop rather than push(...items): a pathological chunk must not hit the engine's argument limit.
  for (const item of items) target.push(item);
}

/**
 * Reads an upstream SSE body incrementally and assembles the completion it carries. Bytes are scanned once: only the
 * unfinished last line is kept between pushes, and every event is parsed exactly once.
 */
export class StreamAssembler {
  private readonly chunkObject: string;
  /** Bytes of the line still waiting for its LF; kept as pieces so a long line arriving slowly is joined once. */
  private pendingLine: Buffer[] = [];
  private eventData: string[] = [];
  private eventName: string | undefined;
  private sawDone = false;
  private sawInvalid = false;
  /** Set with sawInvalid when the invalid event was the upstream's own error, or data that is not JSON at all. */
  private sawUpstreamError = false;
  private sawGarbage = false;
  /** Set when the stream carried something this module cannot reproduce: valid, but it must not be stored. */
  private unsupported = false;
  private readonly envelope = new Map<EnvelopeField, unknown>();
  private usage: Record<string, unknown> | undefined;
  private readonly chatChoices = new Map<number, ChatChoiceDraft>();
  private readonly textChoices = new Map<number, TextChoiceDraft>();

  constructor(private readonly route: CompletionRoute) {
    this.chunkObject = CHUNK_OBJECT[route];
  }

  /** True once `data: [DONE]` was seen. */
  get done(): boolean {
    return this.sawDone;
  }

  /** Whether anything invalid was seen (unparsable data, an error event, a chunk of another object type). */
  get failed(): boolean {
    return this.sawInvalid;
  }

  /** Whether the upstream reported an error in the stream (`event: error`, or data carrying `error`). */
  get upstreamError(): boolean {
    return this.sawUpstreamError;
  }

  /**
   * What makes the stream fed so far unfit to reach a client as it is, or undefined: data that is not JSON (the SDKs
   * would throw a parse error), or, once it `ended`, a well-formed stream without its final `[DONE]` (cut short). A
   * stream that carried the upstream's own error event is not broken: the client has the upstream's error.
   */
  brokenBy(ended: boolean): string | undefined {
    if (this.sawGarbage) return 'sent an event that is not valid JSON';
    if (ended && !this.sawDone && !this.sawInvalid) return 'ended its stream before the final event';
    return undefined;
  }

  /** Feed the upstream body as it arrives, in any chunking; LF or CRLF line endings. */
  push(bytes: Buffer): void {
    if (this.sawDone || this.sawInvalid) return;
    let lineStart = 0;
    let lineEnd = bytes.indexOf(LF);
    while (lineEnd !== -1) {
      if (this.pendingLine.length === 0) {
        this.readLine(bytes, lineStart, lineEnd);
      } else {
        this.pendingLine.push(bytes.subarray(lineStart, lineEnd));
        const line = Buffer.concat(this.pendingLine);
        this.pendingLine = [];
        this.readLine(line, 0, line.length);
      }
      if (this.sawDone || this.sawInvalid) return;
      lineStart = lineEnd + 1;
      lineEnd = bytes.indexOf(LF, lineStart);
    }
    // Copied: the caller may reuse its buffer once push returns.
    if (lineStart < bytes.length) this.pendingLine.push(Buffer.from(bytes.subarray(lineStart)));
  }

  /** The assembled non-streaming object, or undefined when the stream is incomplete, failed or cannot be reproduced. */
  result(): Record<string, unknown> | undefined {
    if (!this.sawDone || this.sawInvalid || this.unsupported) return undefined;
    const choices = this.route === 'chat.completions' ? this.chatResultChoices() : this.textResultChoices();
    if (choices === undefined) return undefined;

    const completion: Record<string, unknown> = {};
    const id = this.envelope.get('id');
    if (id !== undefined) completion.id = id;
    completion.object = this.route === 'chat.completions' ? 'chat.completion' : 'text_completion';
    for (const field of ['created', 'model'] as const) {
      const value = this.envelope.get(field);
      if (value !== undefined) completion[field] = value;
    }
    completion.choices = choices;
    if (this.usage !== undefined) completion.usage = this.usage;
    for (const field of ['service_tier', 'system_fingerprint'] as const) {
      // has(), not get(): a fingerprint sent as null is kept as null, as in OpenAI's non-streaming answer.
      if (this.envelope.has(field)) completion[field] = this.envelope.get(field);
    }
    return completion;
  }

  /** One line without its LF (and CR); the SSE field grammar, of which OpenAI uses `data`, `event` and comments. */
  private readLine(bytes: Buffer, start: number, end: number): void {
    if (end > start && bytes[end - 1] === CR) end--;
    if (end === start) {
      this.dispatchEvent();
      return;
    }
    if (bytes[start] === COLON) return;
    // Decoding a whole line is safe: LF never occurs inside a multi-byte UTF-8 sequence.
    if (end - start >= DATA_FIELD.length && DATA_FIELD.compare(bytes, start, start + DATA_FIELD.length) === 0) {
      this.eventData.push(bytes.toString('utf8', start + DATA_FIELD.length, end));
      return;
    }
    const line = bytes.toString('utf8', start, end);
    const colon = line.indexOf(':');
    const field = colon === -1 ? line : line.slice(0, colon);
    let value = colon === -1 ? '' : line.slice(colon + 1);
    if (value.charCodeAt(0) === 0x20) value = value.slice(1);
    if (field === 'data') this.eventData.push(value);
    else if (field === 'event') this.eventName = value;
  }

  private dispatchEvent(): void {
    const eventName = this.eventName;
    const dataLines = this.eventData;
    this.eventName = undefined;
    if (dataLines.length === 0) return;
    this.eventData = [];
    if (eventName === 'error') {
      this.sawInvalid = true;
      this.sawUpstreamError = true;
      return;
    }
    const data = dataLines.length === 1 ? (dataLines[0] as string) : dataLines.join('\n');
    // startsWith, as the openai SDKs test it.
    if (data.startsWith('[DONE]')) {
      this.sawDone = true;
      return;
    }
    let chunk: unknown;
    try {
      // The wire boundary: JSON.parse yields `any`, narrowed field by field below.
      chunk = JSON.parse(data);
    } catch {
      this.sawInvalid = true;
      this.sawGarbage = true;
      return;
    }
    if (isRecord(chunk) && chunk.error !== undefined && chunk.error !== null) {
      this.sawInvalid = true;
      this.sawUpstreamError = true;
      return;
    }
    if (!isRecord(chunk) || !Array.isArray(chunk.choices)) {
      this.sawInvalid = true;
      return;
    }
    // A missing `object` is tolerated (some compatible servers omit it); a different one is another kind of stream.
    if (chunk.object !== undefined && chunk.object !== this.chunkObject) {
      this.sawInvalid = true;
      return;
    }
    this.takeEnvelope(chunk);
    if (isRecord(chunk.usage)) this.usage = chunk.usage;
    for (const choice of chunk.choices) {
      if (!isRecord(choice) || !isChoiceIndex(choice.index)) {
        this.sawInvalid = true;
        return;
      }
      if (this.route === 'chat.completions') this.addChatChoice(choice, choice.index);
      else this.addTextChoice(choice, choice.index);
      if (this.sawInvalid) return;
    }
  }

  private takeEnvelope(chunk: Record<string, unknown>): void {
    if (this.envelope.size === ENVELOPE_FIELDS.length) return;
    for (const field of ENVELOPE_FIELDS) {
      const value = chunk[field];
      if (value !== undefined && !this.envelope.has(field)) this.envelope.set(field, value);
    }
  }

  private addChatChoice(choice: Record<string, unknown>, index: number): void {
    let draft = this.chatChoices.get(index);
    if (draft === undefined) {
      draft = {
        role: undefined,
        content: null,
        refusal: null,
        toolCalls: undefined,
        functionCall: undefined,
        annotations: undefined,
        finishReason: undefined,
        logprobsSeen: false,
        contentLogprobs: null,
        refusalLogprobs: null,
      };
      this.chatChoices.set(index, draft);
    }

    const delta = choice.delta;
    if (isRecord(delta)) {
      for (const key in delta) {
        if (!MERGED_DELTA_FIELDS.has(key) && delta[key] !== null && delta[key] !== undefined) this.unsupported = true;
      }
      if (typeof delta.role === 'string' && draft.role === undefined) draft.role = delta.role;
      if (typeof delta.content === 'string') draft.content = (draft.content ?? '') + delta.content;
      if (typeof delta.refusal === 'string') draft.refusal = (draft.refusal ?? '') + delta.refusal;
      if (Array.isArray(delta.tool_calls)) this.mergeToolCalls(draft, delta.tool_calls);
      if (isRecord(delta.function_call)) {
        const fragment = delta.function_call;
        const call = (draft.functionCall ??= { name: undefined, arguments: '' });
        if (typeof fragment.name === 'string' && call.name === undefined) call.name = fragment.name;
        if (typeof fragment.arguments === 'string') call.arguments += fragment.arguments;
      }
      if (Array.isArray(delta.annotations)) appendAll((draft.annotations ??= []), delta.annotations);
    }

    if (typeof choice.finish_reason === 'string') draft.finishReason = choice.finish_reason;

    const logprobs = choice.logprobs;
    if (isRecord(logprobs)) {
      draft.logprobsSeen = true;
      if (Array.isArray(logprobs.content)) appendAll((draft.contentLogprobs ??= []), logprobs.content);
      if (Array.isArray(logprobs.refusal)) appendAll((draft.refusalLogprobs ??= []), logprobs.refusal);
    }
  }

  private mergeToolCalls(draft: ChatChoiceDraft, fragments: unknown[]): void {
    const calls = (draft.toolCalls ??= new Map());
    for (const fragment of fragments) {
      if (!isRecord(fragment) || !isChoiceIndex(fragment.index)) {
        this.sawInvalid = true;
        return;
      }
      let call = calls.get(fragment.index);
      if (call === undefined) {
        call = { id: undefined, type: undefined, name: undefined, arguments: '' };
        calls.set(fragment.index, call);
      }
      if (typeof fragment.id === 'string' && call.id === undefined) call.id = fragment.id;
      if (typeof fragment.type === 'string' && call.type === undefined) {
        call.type = fragment.type;
        // Custom tools stream their input under another key; merging them is not implemented, so never store them.
        if (fragment.type !== 'function') this.unsupported = true;
      }
      const fn = fragment.function;
      if (isRecord(fn)) {
        if (typeof fn.name === 'string' && call.name === undefined) call.name = fn.name;
        if (typeof fn.arguments === 'string') call.arguments += fn.arguments;
      }
    }
  }

  private addTextChoice(choice: Record<string, unknown>, index: number): void {
    let draft = this.textChoices.get(index);
    if (draft === undefined) {
      draft = { text: '', finishReason: undefined, logprobs: undefined };
      this.textChoices.set(index, draft);
    }
    if (typeof choice.text === 'string') draft.text += choice.text;
    if (typeof choice.finish_reason === 'string') draft.finishReason = choice.finish_reason;
    const logprobs = choice.logprobs;
    if (isRecord(logprobs)) {
      const merged = (draft.logprobs ??= { tokens: null, token_logprobs: null, top_logprobs: null, text_offset: null });
      for (const field of COMPLETION_LOGPROB_FIELDS) {
        const values = logprobs[field];
        if (Array.isArray(values)) appendAll((merged[field] ??= []), values);
      }
    }
  }

  /** Choices in index order, or undefined when one is missing, unfinished, or a tool call lacks its id or name. */
  private chatResultChoices(): Record<string, unknown>[] | undefined {
    const choices: Record<string, unknown>[] = [];
    for (let index = 0; index < this.chatChoices.size; index++) {
      const draft = this.chatChoices.get(index);
      if (draft === undefined || draft.finishReason === undefined) return undefined;

      const message: Record<string, unknown> = { role: draft.role ?? 'assistant', content: draft.content, refusal: draft.refusal };
      if (draft.toolCalls !== undefined) {
        const toolCalls: Record<string, unknown>[] = [];
        for (let callIndex = 0; callIndex < draft.toolCalls.size; callIndex++) {
          const call = draft.toolCalls.get(callIndex);
          // OpenAI's non-streaming form always has both; inventing them would serve a different answer.
          if (call === undefined || call.id === undefined || call.name === undefined) return undefined;
          toolCalls.push({ id: call.id, type: call.type ?? 'function', function: { name: call.name, arguments: call.arguments } });
        }
        message.tool_calls = toolCalls;
      }
      if (draft.functionCall !== undefined) {
        if (draft.functionCall.name === undefined) return undefined;
        message.function_call = { name: draft.functionCall.name, arguments: draft.functionCall.arguments };
      }
      if (draft.annotations !== undefined) message.annotations = draft.annotations;

      choices.push({
        index,
        message,
        logprobs: draft.logprobsSeen ? { content: draft.contentLogprobs, refusal: draft.refusalLogprobs } : null,
        finish_reason: draft.finishReason,
      });
    }
    return choices.length === 0 ? undefined : choices;
  }

  private textResultChoices(): Record<string, unknown>[] | undefined {
    const choices: Record<string, unknown>[] = [];
    for (let index = 0; index < this.textChoices.size; index++) {
      const draft = this.textChoices.get(index);
      if (draft === undefined || draft.finishReason === undefined) return undefined;
      choices.push({ text: draft.text, index, logprobs: draft.logprobs ?? null, finish_reason: draft.finishReason });
    }
    return choices.length === 0 ? undefined : choices;
  }
}
