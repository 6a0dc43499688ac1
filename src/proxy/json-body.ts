// Reads the body of the OpenAI JSON routes: keeps the exact bytes (they go upstream unchanged) and the parsed
// object, and turns anything that is not a JSON object into a 400 that says what is wrong.
import type { FastifyInstance } from 'fastify';
import { RecallError, invalidJson } from '../openai/errors.js';
import type { JsonObject } from '../openai/wire.js';

/** Accepts any content type as JSON, as OpenAI's API does for clients that forget the header. */
export function registerJsonBodyParser(app: FastifyInstance, limitBytes: number): void {
  app.removeAllContentTypeParsers();
  app.addContentTypeParser('*', { parseAs: 'buffer', bodyLimit: limitBytes }, (request, raw, done) => {
    const bytes = raw as Buffer;
    request.recall.rawBody = bytes;
    try {
      done(null, parseJsonObject(bytes));
    } catch (err) {
      done(err as Error, undefined);
    }
  });
}

export function parseJsonObject(bytes: Buffer): JsonObject {
  if (bytes.length === 0) throw invalidJson('the body is empty');
  let value: unknown;
  try {
    value = JSON.parse(bytes.toString('utf8'));
  } catch (err) {
    throw invalidJson((err as Error).message);
  }
  if (typeof value !== 'object' || value === null || Array.isArray(value)) {
    throw new RecallError('invalidBody', `The request body must be a JSON object, not ${value === null ? 'null' : Array.isArray(value) ? 'an array' : typeof value}.`);
  }
  return value as JsonObject;
}
