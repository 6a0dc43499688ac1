// The exact-tier cache key: SHA-256 over a version tag, route, tenant, namespace and the request body in canonical
// form (keys sorted, numbers normalised, whitespace gone, fields that cannot change the answer removed).
import { createHash } from 'node:crypto';
import type { CachedRoute } from '../proxy/pipeline.js';
import { BoundedMemo, FrozenBodyMemo } from './bounded-memo.js';

/** Bump when the canonical form or the entry format changes: old entries then simply stop matching. */
export const KEY_VERSION = 'recall-key-v1';

export type FieldRule = { inKey: true; reason: string } | { inKey: false; reason: string };

const kept = (reason: string): FieldRule => ({ inKey: true, reason });
const ignored = (reason: string): FieldRule => ({ inKey: false, reason });

// Fields shared by the two completion routes.
const SAMPLING: Record<string, FieldRule> = {
  model: kept('a different model gives a different answer'),
  frequency_penalty: kept('changes token sampling'),
  presence_penalty: kept('changes token sampling'),
  logit_bias: kept('changes token sampling'),
  logprobs: kept('adds log probabilities to the answer'),
  max_tokens: kept('can cut the answer short'),
  n: kept('number of choices in the answer'),
  seed: kept('selects a different sample'),
  stop: kept('can cut the answer short'),
  temperature: kept('changes token sampling'),
  top_p: kept('changes token sampling'),
  user: ignored('end-user id for abuse monitoring; never changes the answer'),
  stream: ignored('one entry serves both forms; only how the answer is delivered'),
  stream_options: ignored('only whether a usage chunk is streamed, rendered from the entry on a hit'),
};

/**
 * Every documented request field of the cached routes, in the key or ignored, with why. A field not listed here
 * (a new API parameter, a provider extension) stays in the key: an unknown field may change the answer.
 */
export const FIELD_RULES: Record<CachedRoute, Record<string, FieldRule>> = {
  'chat.completions': {
    ...SAMPLING,
    messages: kept('the conversation itself'),
    audio: kept('selects audio output and voice'),
    function_call: kept('legacy control of function calling'),
    functions: kept('legacy function definitions the model may call'),
    max_completion_tokens: kept('can cut the answer short'),
    modalities: kept('selects text and/or audio output'),
    parallel_tool_calls: kept('whether several tool calls may be returned'),
    prediction: kept('predicted output changes generation'),
    reasoning_effort: kept('changes how the model reasons'),
    response_format: kept('constrains the answer to JSON or a schema'),
    tool_choice: kept('forces or forbids tool calls'),
    tools: kept('the tools the model may call'),
    top_logprobs: kept('adds alternatives to the log probabilities'),
    verbosity: kept('changes answer length'),
    web_search_options: kept('changes what the model searches'),
    metadata: ignored('tags for stored completions; never changes the answer'),
    store: ignored('whether OpenAI keeps the completion; never changes the answer'),
    prompt_cache_key: ignored("routing hint for OpenAI's own prompt cache; never changes the answer"),
    prompt_cache_retention: ignored("retention of OpenAI's own prompt cache; never changes the answer"),
    safety_identifier: ignored('end-user id for abuse monitoring; never changes the answer'),
    service_tier: ignored('processing tier (latency and price), not content'),
  },
  completions: {
    ...SAMPLING,
    prompt: kept('the text to complete'),
    best_of: kept('generates several candidates and keeps the best'),
    echo: kept('repeats the prompt in the answer'),
    suffix: kept('text after the completion'),
  },
  embeddings: {
    model: kept('a different model gives a different vector'),
    input: kept('the text to embed'),
    dimensions: kept('length of the vector'),
    encoding_format: kept('float or base64 in the answer'),
    user: ignored('end-user id for abuse monitoring; never changes the answer'),
  },
};

export interface KeyParts {
  route: CachedRoute;
  /** HMAC of the client's API key, or the shared partition. */
  tenant: string;
  namespace: string;
  body: Readonly<Record<string, unknown>>;
}

/**
 * The key of a request: `<namespace>:<hex SHA-256>`. The namespace stands in clear in front so that an operator can
 * purge one namespace by prefix; it is also inside the hash, so the two cannot disagree.
 */
export function cacheKey(parts: KeyParts): string {
  const hash = createHash('sha256');
  hash.update(KEY_VERSION).update('\0').update(parts.route).update('\0').update(parts.tenant).update('\0')
    .update(parts.namespace).update('\0').update(canonicalBody(parts.route, parts.body));
  return `${parts.namespace}:${hash.digest('hex')}`;
}

/**
 * Remembers the key of recently seen bodies, so a repeat skips canonicalising the body, the largest cost of the hit
 * path in profiles. A frozen body (a repeated one, see proxy/json-body.ts) cannot change: its keys are remembered by
 * identity. Others by the SHA-256 of their raw bytes: equal bytes with equal route, tenant and namespace always give
 * the same key.
 */
export class KeyMemo {
  private readonly memo = new BoundedMemo<string>(10_000);
  private readonly byBody = new FrozenBodyMemo<string>();

  keyFor(parts: KeyParts, raw: Buffer | undefined): string {
    const partition = `${parts.route}\0${parts.tenant}\0${parts.namespace}`;
    if (Object.isFrozen(parts.body)) {
      let key = this.byBody.get(parts.body, partition);
      if (key === undefined) this.byBody.set(parts.body, partition, (key = cacheKey(parts)));
      return key;
    }
    if (raw === undefined) return cacheKey(parts);
    const memoKey = `${partition}\0${createHash('sha256').update(raw).digest('base64')}`;
    let key = this.memo.get(memoKey);
    if (key === undefined) {
      key = cacheKey(parts);
      this.memo.set(memoKey, key);
    }
    return key;
  }
}

/** The body with ignored fields removed, as canonical JSON. */
export function canonicalBody(route: CachedRoute, body: Readonly<Record<string, unknown>>): string {
  const rules = FIELD_RULES[route];
  let out = '{';
  let first = true;
  for (const name of Object.keys(body).sort()) {
    if (rules[name]?.inKey === false) continue;
    const value = body[name];
    if (value === undefined) continue;
    out += `${first ? '' : ','}${JSON.stringify(name)}:${canonicalJson(value)}`;
    first = false;
  }
  return `${out}}`;
}

/** JSON with object keys sorted at every depth; numbers and strings as JSON.stringify writes them. */
export function canonicalJson(value: unknown): string {
  if (value === null || typeof value !== 'object') return JSON.stringify(value) ?? 'null';
  if (Array.isArray(value)) return `[${value.map(canonicalJson).join(',')}]`;
  const record = value as Record<string, unknown>;
  const members: string[] = [];
  for (const name of Object.keys(record).sort()) {
    if (record[name] === undefined) continue;
    members.push(`${JSON.stringify(name)}:${canonicalJson(record[name])}`);
  }
  return `{${members.join(',')}}`;
}
