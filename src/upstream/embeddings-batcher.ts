// The embeddings micro-batcher: the cache misses of concurrent /v1/embeddings requests that would make the same
// upstream call but for their inputs are gathered for a few milliseconds and sent as one call; each request gets back
// exactly its own part of the answer. It wraps the upstream sending path (`send => send'`) and knows nothing else.
import { createHash } from 'node:crypto';
import { apportionTokens } from '../cache/embeddings.js';
import { canonicalJson } from '../cache/key.js';
import { RecallError } from '../openai/errors.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import type { SendWhole, WholeAnswer } from '../proxy/forward.js';
import type { UpstreamRequest } from './client.js';
import { PRIORITIES, type Priority } from './priority.js';

export interface BatcherSettings {
  /** How long the first request of a batch waits for others, in ms (> 0; 0 means no batcher at all). */
  windowMs: number;
  /** Most inputs in one upstream call (OpenAI: 2048). */
  maxInputs: number;
  /** Most estimated tokens in one upstream call (OpenAI: 300,000); see `estimatedTokens`. */
  maxTokens: number;
}

/** Why an upstream call was made: the window closed, the batch was full, a `high` request came, the request alone
 * is over the limits, Recall is closing, or a batch refused as a whole is sent again request by request. */
export type BatchTrigger = 'window' | 'full' | 'priority' | 'oversize' | 'shutdown' | 'split';

/** What the batcher reports; `Metrics` implements it. */
export interface BatchObserver {
  embeddingsBatchSent(inputs: number, requests: number, trigger: BatchTrigger): void;
  embeddingsGathering(inputs: number): void;
}

/**
 * Headers that decide who the upstream bills and what it lets the caller do: requests merge only when these are
 * equal. They are hashed into the batch key, never logged or used as a label.
 */
const CREDENTIAL_HEADERS = ['authorization', 'api-key', 'openai-organization', 'openai-project'] as const;

/**
 * A merged call refused with one of these may have been refused for one request's input (too long, too many tokens
 * summed over the batch): each request is then sent again on its own, so it gets the upstream's answer to its own
 * inputs. Other errors (401, 404, 429, 5xx) concern every request alike and are passed to each as they are.
 */
const REFUSED_AS_A_WHOLE = new Set([400, 413, 422]);

type Departure = NonNullable<UpstreamRequest['signal']>;

/** A request's misses: the upstream body's fields other than `input`, and its input items. */
interface Misses {
  fields: JsonObject;
  /** Strings, or token arrays; never both in one request (nor in one batch). */
  items: readonly (string | readonly number[])[];
  kind: 'text' | 'tokens';
}

interface Member {
  call: UpstreamRequest;
  items: Misses['items'];
  /** Per item, the weight its share of usage is apportioned by: the same as the embeddings cache uses. */
  weights: number[];
  tokens: number;
  priority: Priority;
  resolve(answer: WholeAnswer): void;
  reject(error: unknown): void;
  /** The batch still gathering this member; undefined once sent (or gone). */
  gathering: Gathering | undefined;
  /** Called when the client leaves after its batch was sent. */
  leftAfterSend: (() => void) | undefined;
  gone: boolean;
  stopWatching(): void;
}

interface Gathering {
  key: string;
  fields: JsonObject;
  members: Member[];
  inputs: number;
  tokens: number;
  timer: NodeJS.Timeout;
}

export class EmbeddingsBatcher {
  /** Batches not sent yet, by batch key; each holds at most maxInputs inputs and maxTokens estimated tokens. */
  private readonly gathering = new Map<string, Gathering>();
  private gatheringInputs = 0;
  private closed = false;

  constructor(
    private readonly next: SendWhole,
    private readonly settings: BatcherSettings,
    private readonly observer: BatchObserver,
  ) {}

  /**
   * Sends `call` upstream, merged with others that make the same call. Calls that are not a JSON embeddings body with
   * an array of inputs go straight on. Resolves with what the upstream answered for this call's inputs alone.
   */
  readonly send: SendWhole = (call) => {
    const misses = this.closed ? undefined : missesOf(call);
    if (misses === undefined || isGone(call.signal)) return this.next(call);
    return new Promise<WholeAnswer>((resolve, reject) => {
      const weights = misses.items.map((item) => item.length);
      const tokens = misses.items.reduce((sum, item) => sum + estimatedTokens(item), 0);
      const member: Member = {
        call, items: misses.items, weights, tokens, priority: call.priority ?? 'normal', resolve, reject,
        gathering: undefined, leftAfterSend: undefined, gone: false, stopWatching: () => {},
      };
      member.stopWatching = watchDeparture(call.signal, () => this.depart(member));
      this.admit(member, batchKey(call, misses), misses.fields);
    });
  };

  /** Sends every batch still gathering; later calls go straight upstream. */
  close(): void {
    this.closed = true;
    for (const batch of [...this.gathering.values()]) this.flush(batch, 'shutdown');
  }

  private admit(member: Member, key: string, fields: JsonObject): void {
    const { maxInputs, maxTokens } = this.settings;
    const inputs = member.items.length;
    if (inputs > maxInputs || member.tokens > maxTokens) {
      // Too large to share a call; it goes as it came, as it would without the batcher.
      this.dispatch([member], fields, 'oversize');
      return;
    }
    let batch = this.gathering.get(key);
    if (batch !== undefined && (batch.inputs + inputs > maxInputs || batch.tokens + member.tokens > maxTokens)) {
      this.flush(batch, 'full');
      batch = undefined;
    }
    batch ??= this.open(key, fields);
    batch.members.push(member);
    batch.inputs += inputs;
    batch.tokens += member.tokens;
    member.gathering = batch;
    this.countGathering(inputs);
    if (member.priority === 'high') this.flush(batch, 'priority');
    else if (batch.inputs >= maxInputs || batch.tokens >= maxTokens) this.flush(batch, 'full');
  }

  private open(key: string, fields: JsonObject): Gathering {
    const batch: Gathering = { key, fields, members: [], inputs: 0, tokens: 0, timer: setTimeout(() => this.flush(batch, 'window'), this.settings.windowMs) };
    this.gathering.set(key, batch);
    return batch;
  }

  private flush(batch: Gathering, trigger: BatchTrigger): void {
    clearTimeout(batch.timer);
    if (this.gathering.get(batch.key) === batch) this.gathering.delete(batch.key);
    this.countGathering(-batch.inputs);
    for (const member of batch.members) member.gathering = undefined;
    if (batch.members.length > 0) this.dispatch(batch.members, batch.fields, trigger);
  }

  /** A client left: while its batch gathers, its inputs leave the batch; once sent, the call goes on for the others. */
  private depart(member: Member): void {
    if (member.gone) return;
    member.gone = true;
    const batch = member.gathering;
    if (batch === undefined) {
      member.leftAfterSend?.();
      return;
    }
    member.gathering = undefined;
    batch.members.splice(batch.members.indexOf(member), 1);
    batch.inputs -= member.items.length;
    batch.tokens -= member.tokens;
    this.countGathering(-member.items.length);
    if (batch.members.length === 0) {
      clearTimeout(batch.timer);
      this.gathering.delete(batch.key);
    }
    fail(member, clientLeft());
  }

  private dispatch(members: Member[], fields: JsonObject, trigger: BatchTrigger): void {
    this.observer.embeddingsBatchSent(members.reduce((sum, member) => sum + member.items.length, 0), members.length, trigger);
    const sending = members.length === 1 ? this.sendAlone(members[0] as Member) : this.sendMerged(members, fields);
    // Every outcome settles the members itself; this only guards against a bug leaving them waiting.
    sending.catch((error: unknown) => {
      for (const member of members) fail(member, error);
    });
  }

  /** One request: its own call, unchanged (own headers, body and departure signal). */
  private async sendAlone(member: Member): Promise<void> {
    member.stopWatching();
    try {
      member.resolve(await this.next(member.call));
    } catch (error) {
      member.reject(error);
    }
  }

  private async sendMerged(members: Member[], fields: JsonObject): Promise<void> {
    const first = members[0] as Member;
    // The call is abandoned only when every client in it has left.
    const abandoned = new AbortController();
    let present = members.length;
    for (const member of members) {
      member.leftAfterSend = () => {
        if (--present === 0) abandoned.abort();
      };
    }
    let upstream: WholeAnswer;
    try {
      upstream = await this.next({
        method: 'POST',
        path: first.call.path,
        // The credentials are equal by construction (the batch key); other headers are the first request's.
        headers: { ...first.call.headers, 'content-type': 'application/json' },
        body: Buffer.from(JSON.stringify({ ...fields, input: members.flatMap((member) => member.items) })),
        signal: abandoned.signal,
        priority: highest(members),
      });
    } catch (error) {
      for (const member of members) fail(member, error);
      return;
    }
    if (upstream.status < 200 || upstream.status > 299) {
      if (REFUSED_AS_A_WHOLE.has(upstream.status)) {
        for (const member of members) {
          member.leftAfterSend = undefined;
          if (member.gone) fail(member, clientLeft());
          else this.dispatch([member], fields, 'split');
        }
        return;
      }
      for (const member of members) answer(member, upstream);
      return;
    }
    let parts: Buffer[];
    try {
      parts = splitAnswer(upstream.body, members);
    } catch (error) {
      for (const member of members) fail(member, error);
      return;
    }
    members.forEach((member, i) => answer(member, { status: upstream.status, headers: upstream.headers, body: parts[i] as Buffer }));
  }

  private countGathering(delta: number): void {
    this.gatheringInputs += delta;
    this.observer.embeddingsGathering(this.gatheringInputs);
  }
}

function answer(member: Member, upstream: WholeAnswer): void {
  member.stopWatching();
  member.leftAfterSend = undefined;
  member.resolve(upstream);
}

function fail(member: Member, error: unknown): void {
  member.stopWatching();
  member.leftAfterSend = undefined;
  member.reject(error);
}

/** What a request that left is failed with; nobody reads it, and it keeps the request out of the error log. */
function clientLeft(): RecallError {
  return new RecallError('clientClosedRequest', 'The client closed the connection before the answer was complete.');
}

// ---------------------------------------------------------------------------------------------------------------------
// Which calls can merge

/** The misses in a call's body, or undefined when it is not a JSON embeddings body with an array of inputs. */
function missesOf(call: UpstreamRequest): Misses | undefined {
  if (call.method !== 'POST' || !Buffer.isBuffer(call.body)) return undefined;
  let body: unknown;
  try {
    body = JSON.parse(call.body.toString('utf8'));
  } catch {
    return undefined;
  }
  if (!isRecord(body) || !Array.isArray(body.input) || body.input.length === 0) return undefined;
  const items: unknown[] = body.input;
  let kind: Misses['kind'];
  if (items.every((item) => typeof item === 'string' && item !== '')) kind = 'text';
  else if (items.every((item) => Array.isArray(item) && item.length > 0 && item.every((token) => typeof token === 'number'))) kind = 'tokens';
  else return undefined;
  const { input: _input, ...fields } = body;
  return { fields, items: items as Misses['items'], kind };
}

/**
 * Calls merge when everything but their inputs is equal: route, kind of input, credentials, and every body field
 * (model, dimensions, encoding_format, user, fields Recall does not know), compared in canonical form.
 */
function batchKey(call: UpstreamRequest, misses: Misses): string {
  const hash = createHash('sha256').update(call.path).update('\0').update(misses.kind);
  for (const name of CREDENTIAL_HEADERS) {
    const value = call.headers[name];
    hash.update('\0').update(value === undefined ? '' : Array.isArray(value) ? value.join('\n') : value);
  }
  return hash.update('\0').update(canonicalJson(misses.fields)).digest('hex');
}

/**
 * A cheap estimate that is above the real count for ordinary text: two UTF-8 bytes per token (English averages about
 * four, CJK about two or three). A token array counts its tokens. A batch the upstream still finds too large is
 * refused as a whole and sent again request by request.
 */
export function estimatedTokens(item: string | readonly number[]): number {
  return typeof item === 'string' ? Math.ceil(Buffer.byteLength(item) / 2) : item.length;
}

function highest(members: readonly Member[]): Priority {
  let best = PRIORITIES.length - 1;
  for (const member of members) best = Math.min(best, PRIORITIES.indexOf(member.priority));
  return PRIORITIES[best] ?? 'normal';
}

function isGone(signal: Departure | undefined): boolean {
  return signal?.aborted === true;
}

/** Calls `onGone` when the signal aborts; returns what stops watching (idempotent). */
function watchDeparture(signal: Departure | undefined, onGone: () => void): () => void {
  if (signal === undefined) return () => {};
  if (signal instanceof AbortSignal) {
    signal.addEventListener('abort', onGone, { once: true });
    return () => signal.removeEventListener('abort', onGone);
  }
  signal.once('abort', onGone);
  return () => void signal.off('abort', onGone);
}

// ---------------------------------------------------------------------------------------------------------------------
// The merged answer, back to each request

/**
 * Cuts a 2xx embeddings list for all members' inputs into one list per member, as the upstream would have answered
 * that member alone: its embeddings, indexed from 0, every other field as the upstream wrote it, and its share of
 * usage (the batch's count apportioned over the items by length, as the embeddings cache apportions it over items).
 */
export function splitAnswer(body: Buffer, members: readonly { weights: readonly number[] }[]): Buffer[] {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw broken('is not JSON', cause);
  }
  const weights = members.flatMap((member) => member.weights);
  if (!isRecord(value) || !Array.isArray(value.data) || value.data.length !== weights.length) throw broken(`does not hold ${weights.length} embeddings`);
  const byIndex = new Array<JsonObject>(weights.length);
  for (const item of value.data) {
    const index = isRecord(item) ? item.index : undefined;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= weights.length || byIndex[index] !== undefined) {
      throw broken('has a missing or repeated index');
    }
    byIndex[index] = item as JsonObject;
  }
  const usage = isRecord(value.usage) ? value.usage : undefined;
  const shares = new Map<string, number[]>();
  for (const field of ['prompt_tokens', 'total_tokens']) {
    const count = usage?.[field];
    if (typeof count === 'number' && Number.isSafeInteger(count) && count >= 0) shares.set(field, apportionTokens(count, weights));
  }
  const whole = value;
  let offset = 0;
  return members.map((member) => {
    const from = offset;
    const to = (offset += member.weights.length);
    const part: JsonObject = {};
    // The upstream's fields in the upstream's order; only `data` and `usage` are this member's own.
    for (const name of Object.keys(whole)) {
      if (name === 'data') part.data = byIndex.slice(from, to).map((item, index) => ({ ...item, index }));
      else if (name === 'usage' && usage !== undefined) part.usage = memberUsage(usage, shares, from, to);
      else part[name] = whole[name];
    }
    return Buffer.from(JSON.stringify(part));
  });
}

function memberUsage(usage: JsonObject, shares: Map<string, number[]>, from: number, to: number): JsonObject {
  const own: JsonObject = { ...usage };
  for (const [field, perItem] of shares) own[field] = perItem.slice(from, to).reduce((a, b) => a + b, 0);
  return own;
}

function broken(what: string, cause?: unknown): RecallError {
  return new RecallError('upstreamBrokenResponse', `The upstream's embeddings answer ${what}.`, null, { cause });
}
