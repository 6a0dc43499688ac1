// Reads the body of the OpenAI JSON routes: keeps the exact bytes (they go upstream unchanged) and the parsed
// object, and turns anything that is not a JSON object into a 400 that says what is wrong.
import type { FastifyInstance } from 'fastify';
import { RecallError, invalidJson } from '../openai/errors.js';
import type { JsonObject } from '../openai/wire.js';
import { BoundedMemo } from '../cache/bounded-memo.js';
import { readBodyWithin } from './body-limit.js';

/** Bodies up to this size are remembered once repeated; a repeat (the hit path) then skips JSON.parse. */
const MEMO_MAX_BODY_BYTES = 8 * 1024;
/** At most this many bodies remembered (at most 16 MB of text). */
const MEMO_MAX_BODIES = 2_000;

/**
 * Accepts any content type as JSON, as OpenAI's API does for clients that forget the header. The body is read here,
 * within the limit (the routes using this parser are marked `limitsOwnBody`, so they need no preParsing hook).
 */
export function registerJsonBodyParser(app: FastifyInstance, limitBytes: number): void {
  const bodies = new RepeatedBodies();
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', (request, payload, done) => {
    readBodyWithin(payload, request.headers['content-length'], limitBytes, (err, bytes) => {
      if (err !== null || bytes === undefined) return done(err, undefined);
      request.recall.rawBody = bytes;
      try {
        done(null, bodies.parse(bytes));
      } catch (parseError) {
        done(parseError as Error, undefined);
      }
    });
  });
}

/**
 * Parses each distinct small body once it is seen a second time: the repeat is handed the same deep-frozen object,
 * which nothing can change, so that later stages may also remember what they derive from it by identity (the cache
 * key). A body seen once costs only its place in the bounded memo.
 */
export class RepeatedBodies {
  private readonly seen = new BoundedMemo<JsonObject | null>(MEMO_MAX_BODIES);

  parse(bytes: Buffer): JsonObject {
    if (bytes.length > MEMO_MAX_BODY_BYTES) return parseJsonObject(bytes);
    const text = bytes.toString('utf8');
    const known = this.seen.get(text);
    if (known) return known;
    const parsed = parseJsonText(text);
    this.seen.set(text, known === null ? deepFreeze(parsed) : null);
    return parsed;
  }
}

function deepFreeze<T>(value: T): T {
  if (typeof value !== 'object' || value === null || Object.isFrozen(value)) return value;
  for (const member of Object.values(value)) deepFreeze(member);
  return Object.freeze(value);
}

export function parseJsonObject(bytes: Buffer): JsonObject {
  if (bytes.length === 0) throw invalidJson('the body is empty');
  return parseJsonText(bytes.toString('utf8'));
}

function parseJsonText(text: string): JsonObject {
  if (text.length === 0) throw invalidJson('the body is empty');
  let value: unknown;
  try {
    value = JSON.parse(text);
  } catch (err) {
    throw invalidJson((err as Error).message);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecallError('invalidBody', `The request body must be a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}.`);
  }
  return value as JsonObject;
}
