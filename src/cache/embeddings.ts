// Per-input caching of /v1/embeddings: every input item is its own entry, so a request with some inputs cached
// sends only the missing ones upstream and answers all of them, in order, in the encoding the client asked for.
import { createHash } from 'node:crypto';
import { RecallError } from '../openai/errors.js';
import { isRecord, type JsonObject } from '../openai/wire.js';
import type { ExactTier } from './exact-tier.js';
import { FIELD_RULES, canonicalJson } from './key.js';
import type { CachePolicy } from './policy.js';

/** Bump when the item key or the entry format changes: old entries then simply stop matching. */
export const EMBEDDING_KEY_VERSION = 'recall-embedding-item-v1';

/** OpenAI's limit on inputs per request; larger requests go upstream whole, to be refused there. */
export const MAX_EMBEDDING_INPUTS = 2048;

const ENTRY_FORMAT = 1;
const NEWLINE = 0x0a;
/** Upstream response headers worth passing to the client of an answer that (partly) came from the upstream. */
const PASSED_HEADER = /^(?:x-request-id$|openai-|x-ratelimit-)/;

/** One input item: a non-empty string, or a non-empty array of token ids. */
export type EmbeddingInput = string | readonly number[];

export interface EmbeddingsUpstreamAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
}

export interface EmbeddingsAnswer {
  status: number;
  headers: Record<string, string | string[]>;
  body: Buffer;
  /** HIT: every input from the cache; MISS: none (also for an upstream error passed through); PARTIAL: some. */
  outcome: 'HIT' | 'MISS' | 'PARTIAL';
  /** Inputs of the request (positions, duplicates included) answered from the cache. */
  cachedInputs: number;
  totalInputs: number;
  /** Distinct inputs stored by this answer (0 when nothing went upstream, on `no-store`, or when the store failed). */
  storedInputs: number;
  /** For HIT and PARTIAL: age in seconds of the oldest cached input used (the `Age` header). */
  ageS?: number;
  /** For HIT and PARTIAL: seconds until the first of the cached inputs used expires (Cache-Status `ttl`). */
  ttlS?: number;
}

export interface EmbeddingsRequest {
  tenant: string;
  policy: CachePolicy;
  body: JsonObject;
}

/** A request that passed `cacheable`: its inputs in order and how the client wants vectors written. */
interface ParsedRequest {
  inputs: EmbeddingInput[];
  encoding: 'float' | 'base64';
  body: JsonObject;
}

/** One distinct input of a request and, once known, its vector and what it cost. */
interface Slot {
  key: string;
  item: EmbeddingInput;
  /** Little-endian float32 bytes. */
  vector: Buffer | undefined;
  tokens: number;
  model: string;
  cached: boolean;
  storedAt: number;
  expiresAt: number;
}

/** A stored item: the model the upstream named, the item's share of prompt tokens, and the vector. */
export interface EmbeddingEntry {
  model: string;
  tokens: number;
  /** Little-endian float32 bytes, exactly as the upstream's base64 carried them. */
  vector: Buffer;
}

export class EmbeddingsCache {
  constructor(
    private readonly tier: ExactTier,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Whether `body` is a well-formed embeddings request this cache can answer. Anything else (no model, empty or
   * mixed input, more than 2048 items, unknown encoding_format, odd dimensions) goes upstream whole and unchanged:
   * the upstream owns validation and its error reaches the client as it wrote it.
   */
  static cacheable(body: unknown): body is JsonObject {
    return parseRequest(body) !== undefined;
  }

  /**
   * Answers from per-input entries and calls `sendUpstream` once, with a JSON body holding only the missing
   * distinct inputs (every other field as the client sent it; `encoding_format: 'base64'`, which is smaller and
   * carries float32 exactly). A non-2xx upstream answer is returned unchanged and nothing is stored; a 2xx answer
   * that is not a matching embeddings list throws `upstreamBrokenResponse`. Entries are stored before this returns.
   */
  async answer(request: EmbeddingsRequest, sendUpstream: (body: Buffer) => Promise<EmbeddingsUpstreamAnswer>): Promise<EmbeddingsAnswer> {
    const parsed = parseRequest(request.body);
    if (parsed === undefined) throw new TypeError('EmbeddingsCache.answer needs a request that EmbeddingsCache.cacheable accepts');
    const { policy } = request;
    const { slots, slotOfInput } = distinctSlots(parsed, request.tenant, policy.namespace);

    if (policy.read) await this.readSlots(slots, policy);

    const missing = slots.filter((slot) => slot.vector === undefined);
    let headers: Record<string, string | string[]> = { 'content-type': 'application/json' };
    let upstreamModel: string | undefined;
    let storedInputs = 0;
    if (missing.length > 0) {
      const upstreamBody = { ...parsed.body, input: missing.map((slot) => slot.item), encoding_format: 'base64' };
      const upstream = await sendUpstream(Buffer.from(JSON.stringify(upstreamBody)));
      if (upstream.status < 200 || upstream.status > 299) {
        return { ...upstream, outcome: 'MISS', cachedInputs: 0, totalInputs: parsed.inputs.length, storedInputs: 0 };
      }
      const batch = readBatch(upstream.body, missing.length);
      const model = batch.model ?? String(parsed.body.model);
      const tokens = apportionTokens(batch.promptTokens, missing.map((slot) => slot.item.length));
      missing.forEach((slot, i) => {
        slot.vector = batch.vectors[i];
        slot.tokens = tokens[i] ?? 0;
        slot.model = model;
      });
      upstreamModel = model;
      headers = { ...headers, ...passedHeaders(upstream.headers) };
      if (policy.write) storedInputs = await this.store(missing, policy.ttlS);
    }

    const cachedInputs = slotOfInput.reduce((count, slot) => count + (slots[slot]?.cached === true ? 1 : 0), 0);
    const total = parsed.inputs.length;
    const model = upstreamModel ?? slots[0]?.model ?? '';
    const answer: EmbeddingsAnswer = {
      status: 200,
      headers,
      body: renderList(slots, slotOfInput, parsed.encoding, model),
      outcome: cachedInputs === total ? 'HIT' : cachedInputs === 0 ? 'MISS' : 'PARTIAL',
      cachedInputs,
      totalInputs: total,
      storedInputs,
    };
    if (cachedInputs > 0) Object.assign(answer, this.freshness(slots));
    return answer;
  }

  private async readSlots(slots: Slot[], policy: CachePolicy): Promise<void> {
    const lookups = await this.tier.lookupMany(slots.map((slot) => slot.key), policy);
    const unreadable: string[] = [];
    lookups.forEach((lookup, i) => {
      const slot = slots[i];
      if (slot === undefined || lookup.outcome !== 'hit') return;
      const entry = decodeEmbeddingEntry(lookup.entry.body);
      if (entry === undefined) {
        unreadable.push(slot.key);
        return;
      }
      Object.assign(slot, entry, { cached: true, storedAt: lookup.entry.storedAt, expiresAt: lookup.entry.expiresAt });
    });
    // An entry that cannot be read is asked for again and replaced.
    await Promise.all(unreadable.map((key) => this.tier.forget(key)));
  }

  private async store(slots: Slot[], ttlS: number): Promise<number> {
    const saved = await Promise.all(slots.map((slot) => this.tier.save(slot.key, encodeEmbeddingEntry(slot as Slot & { vector: Buffer }), ttlS)));
    return saved.filter(Boolean).length;
  }

  private freshness(slots: Slot[]): { ageS: number; ttlS: number } {
    let oldest = Infinity;
    let firstExpiry = Infinity;
    for (const slot of slots) {
      if (!slot.cached) continue;
      oldest = Math.min(oldest, slot.storedAt);
      firstExpiry = Math.min(firstExpiry, slot.expiresAt);
    }
    const now = this.now();
    return { ageS: Math.max(0, Math.floor((now - oldest) / 1000)), ttlS: Math.max(0, Math.ceil((firstExpiry - now) / 1000)) };
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Request shape and item keys

function parseRequest(body: unknown): ParsedRequest | undefined {
  if (!isRecord(body)) return undefined;
  if (typeof body.model !== 'string' || body.model === '') return undefined;
  const { dimensions, encoding_format: format } = body;
  if (dimensions !== undefined && !(typeof dimensions === 'number' && Number.isSafeInteger(dimensions) && dimensions > 0)) return undefined;
  if (format !== undefined && format !== 'float' && format !== 'base64') return undefined;
  const inputs = inputsOf(body.input);
  if (inputs === undefined) return undefined;
  // An absent encoding_format means float in the API (the SDK sends base64 unless told otherwise).
  return { inputs, encoding: format === 'base64' ? 'base64' : 'float', body };
}

/** string | string[] | number[] (one token array) | number[][]; mixed arrays are left to the upstream to judge. */
function inputsOf(input: unknown): EmbeddingInput[] | undefined {
  if (typeof input === 'string') return input === '' ? undefined : [input];
  if (!Array.isArray(input) || input.length === 0) return undefined;
  const first: unknown = input[0];
  if (typeof first === 'number') return isTokenArray(input) ? [input] : undefined;
  if (input.length > MAX_EMBEDDING_INPUTS) return undefined;
  if (typeof first === 'string') return input.every((item) => typeof item === 'string' && item !== '') ? (input as string[]) : undefined;
  return input.every(isTokenArray) ? (input as number[][]) : undefined;
}

function isTokenArray(value: unknown): value is number[] {
  return Array.isArray(value) && value.length > 0 && value.every((token) => Number.isSafeInteger(token) && (token as number) >= 0);
}

/**
 * What, besides the item, decides an item's vector: every body field except the inputs, `encoding_format` (only how
 * the vector is written) and fields the key table ignores (`user`). Unknown fields stay in, as for the other routes.
 */
function partitionOf(body: JsonObject): string {
  const rules = FIELD_RULES.embeddings;
  const shaping: JsonObject = {};
  for (const name of Object.keys(body)) {
    if (name === 'input' || name === 'encoding_format' || rules[name]?.inKey === false) continue;
    shaping[name] = body[name];
  }
  return canonicalJson(shaping);
}

function itemKey(namespace: string, prefix: string, item: EmbeddingInput): string {
  const digest = createHash('sha256').update(prefix).update(canonicalJson(item)).digest('hex');
  return `${namespace}:${digest}`;
}

function keyPrefix(tenant: string, namespace: string, body: JsonObject): string {
  return `${EMBEDDING_KEY_VERSION}\0embeddings\0${tenant}\0${namespace}\0${partitionOf(body)}\0`;
}

/**
 * The entry key of one input item: `<namespace>:<hex SHA-256>` over a version tag, the route, tenant, namespace, the
 * request's answer-shaping fields (model, dimensions, …; `dimensions` absent is not `dimensions` present) and the
 * item. The same item has the same key whatever else the request holds, and whatever `encoding_format` or `user`.
 */
export function embeddingItemKey(parts: { tenant: string; namespace: string; body: JsonObject; item: EmbeddingInput }): string {
  return itemKey(parts.namespace, keyPrefix(parts.tenant, parts.namespace, parts.body), parts.item);
}

/** One slot per distinct item (identical inputs are fetched once) and, per input position, its slot. */
function distinctSlots(parsed: ParsedRequest, tenant: string, namespace: string): { slots: Slot[]; slotOfInput: number[] } {
  const prefix = keyPrefix(tenant, namespace, parsed.body);
  const slots: Slot[] = [];
  const slotOfInput: number[] = [];
  const byKey = new Map<string, number>();
  for (const item of parsed.inputs) {
    const key = itemKey(namespace, prefix, item);
    let slot = byKey.get(key);
    if (slot === undefined) {
      slot = slots.length;
      byKey.set(key, slot);
      slots.push({ key, item, vector: undefined, tokens: 0, model: '', cached: false, storedAt: 0, expiresAt: 0 });
    }
    slotOfInput.push(slot);
  }
  return { slots, slotOfInput };
}

// ---------------------------------------------------------------------------------------------------------------------
// Entry format: one line of JSON `{"v":1,"model":…,"tokens":…}`, a newline, then the vector as float32 LE bytes.
// JSON.stringify never writes a raw newline, so the first 0x0a ends the header; the header stays readable in Redis.

export function encodeEmbeddingEntry(entry: EmbeddingEntry): Buffer {
  const header = Buffer.from(`${JSON.stringify({ v: ENTRY_FORMAT, model: entry.model, tokens: entry.tokens })}\n`);
  return Buffer.concat([header, entry.vector]);
}

/** The stored item, or undefined when the bytes are not an entry of this format. */
export function decodeEmbeddingEntry(body: Buffer): EmbeddingEntry | undefined {
  const end = body.indexOf(NEWLINE);
  if (end < 0) return undefined;
  let header: unknown;
  try {
    header = JSON.parse(body.toString('utf8', 0, end));
  } catch {
    return undefined;
  }
  if (!isRecord(header) || header.v !== ENTRY_FORMAT || typeof header.model !== 'string') return undefined;
  const { tokens } = header;
  if (typeof tokens !== 'number' || !Number.isSafeInteger(tokens) || tokens < 0) return undefined;
  const vector = body.subarray(end + 1);
  if (vector.length === 0 || vector.length % 4 !== 0) return undefined;
  return { model: header.model, tokens, vector };
}

// ---------------------------------------------------------------------------------------------------------------------
// Usage: what the upstream charged for a batch, shared over its items

/**
 * Splits `total` over items in proportion to `weights` (characters of a string, length of a token array), largest
 * remainders first (earlier items on ties), so the shares are whole numbers that sum exactly to `total`. A partly
 * cached answer's usage is therefore exact for what the upstream charged now plus such estimates for cached items.
 */
export function apportionTokens(total: number, weights: readonly number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (weights.length === 0) return [];
  if (sum <= 0) return apportionTokens(total, weights.map(() => 1));
  const shares = weights.map((weight) => Math.floor((total * weight) / sum));
  const remainders = weights.map((weight) => (total * weight) % sum);
  let left = total - shares.reduce((a, b) => a + b, 0);
  const order = weights.map((_, i) => i).sort((a, b) => (remainders[b] ?? 0) - (remainders[a] ?? 0) || a - b);
  for (const i of order) {
    if (left <= 0) break;
    shares[i] = (shares[i] ?? 0) + 1;
    left--;
  }
  return shares;
}

// ---------------------------------------------------------------------------------------------------------------------
// The upstream's answer in, the client's answer out

interface Batch {
  /** Float32 LE bytes, by position in the batch sent. */
  vectors: Buffer[];
  model: string | undefined;
  promptTokens: number;
}

/** Reads a 2xx embeddings list for `count` inputs; anything else is a broken upstream answer. */
function readBatch(body: Buffer, count: number): Batch {
  let value: unknown;
  try {
    value = JSON.parse(body.toString('utf8'));
  } catch (cause) {
    throw broken('is not JSON', cause);
  }
  if (!isRecord(value) || !Array.isArray(value.data) || value.data.length !== count) throw broken(`does not hold ${count} embeddings`);
  const vectors: Buffer[] = new Array<Buffer>(count);
  for (const item of value.data) {
    const index = isRecord(item) ? item.index : undefined;
    if (typeof index !== 'number' || !Number.isInteger(index) || index < 0 || index >= count || vectors[index] !== undefined) {
      throw broken('has a missing or repeated index');
    }
    const vector = vectorBytes((item as JsonObject).embedding);
    if (vector === undefined) throw broken(`has an unreadable embedding at index ${index}`);
    vectors[index] = vector;
  }
  const usage = isRecord(value.usage) ? value.usage.prompt_tokens : undefined;
  return {
    vectors,
    model: typeof value.model === 'string' ? value.model : undefined,
    // An upstream that reports no usage makes its items count as free.
    promptTokens: typeof usage === 'number' && Number.isSafeInteger(usage) && usage >= 0 ? usage : 0,
  };
}

/** Base64 as asked for; a float array too, from upstreams that ignore `encoding_format`. */
function vectorBytes(embedding: unknown): Buffer | undefined {
  if (typeof embedding === 'string') {
    const bytes = Buffer.from(embedding, 'base64');
    return bytes.length > 0 && bytes.length % 4 === 0 ? bytes : undefined;
  }
  if (!Array.isArray(embedding) || embedding.length === 0) return undefined;
  const bytes = Buffer.allocUnsafe(embedding.length * 4);
  for (let i = 0; i < embedding.length; i++) {
    const component: unknown = embedding[i];
    if (typeof component !== 'number' || !Number.isFinite(component)) return undefined;
    bytes.writeFloatLE(component, i * 4);
  }
  return bytes;
}

function broken(what: string, cause?: unknown): RecallError {
  return new RecallError('upstreamBrokenResponse', `The upstream's embeddings answer ${what}.`, null, { cause });
}

function passedHeaders(upstream: Record<string, string | string[]>): Record<string, string | string[]> {
  const out: Record<string, string | string[]> = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value !== undefined && PASSED_HEADER.test(name.toLowerCase())) out[name.toLowerCase()] = value;
  }
  return out;
}

/** OpenAI's list, field for field; base64 is the stored bytes re-encoded, so it matches the upstream's exactly. */
function renderList(slots: Slot[], slotOfInput: number[], encoding: 'float' | 'base64', model: string): Buffer {
  const written = new Array<string | undefined>(slots.length);
  let promptTokens = 0;
  let data = '';
  slotOfInput.forEach((slotIndex, index) => {
    const slot = slots[slotIndex] as Slot;
    const vector = slot.vector as Buffer;
    const embedding = (written[slotIndex] ??= encoding === 'base64' ? `"${vector.toString('base64')}"` : floatArrayJson(vector));
    data += `${index === 0 ? '' : ','}{"object":"embedding","index":${index},"embedding":${embedding}}`;
    promptTokens += slot.tokens;
  });
  const usage = `{"prompt_tokens":${promptTokens},"total_tokens":${promptTokens}}`;
  return Buffer.from(`{"object":"list","data":[${data}],"model":${JSON.stringify(model)},"usage":${usage}}`);
}

/** The float32 values as JSON numbers; JSON.parse of each gives back the same float32. */
function floatArrayJson(vector: Buffer): string {
  const values = new Array<number>(vector.length / 4);
  for (let i = 0; i < values.length; i++) values[i] = vector.readFloatLE(i * 4);
  return JSON.stringify(values);
}
