// Fastify's validator compiler for every route's schema: one Ajv that never changes the data it checks (no
// coercion, no defaults, nothing removed), input limits on every body (string length, nesting depth), and every
// failure turned into a 400 in OpenAI's shape whose `param` and message name the field, e.g. `messages[2].role`.
// A repeated body is one deep-frozen object (json-body.ts): validated once, its repeats cost a WeakSet lookup.
import { Ajv, type ErrorObject } from 'ajv';
import type { FastifySchemaCompiler } from 'fastify';
import { RecallError, invalidJson, quoted } from '../openai/errors.js';

export interface InputLimits {
  maxStringChars: number;
  maxJsonDepth: number;
}

export function requestValidatorCompiler(limits: InputLimits): FastifySchemaCompiler<unknown> {
  // Bodies are frozen and part of the cache key: Ajv must only read them. String lengths are limited by the walk
  // below, so no schema needs maxLength (Ajv would count code points through the whole string).
  const ajv = new Ajv({ coerceTypes: false, useDefaults: false, removeAdditional: false, allErrors: false, verbose: true, strict: false });
  return ({ schema, httpPart }) => {
    const check = ajv.compile(schema as object);
    const isBody = httpPart === 'body';
    const validated = new WeakSet<object>();
    return (data: unknown) => {
      if (isBody && data === null) return { error: invalidJson('the body is empty') };
      if (typeof data === 'object' && data !== null && validated.has(data)) return true;
      if (!check(data)) return { error: fieldError(check.errors?.[0], isBody) };
      if (isBody) {
        const violation = findViolation(data, 1, limits);
        if (violation !== undefined) return { error: limitError(violation, limits) };
      }
      if (typeof data === 'object' && data !== null && Object.isFrozen(data)) validated.add(data);
      return true;
    };
  };
}

interface Violation {
  kind: 'string' | 'key' | 'depth';
  /** Property names and array indices from the body down to the offending value. */
  path: (string | number)[];
}

/** The first string longer than the limit or container nested deeper than it; recursion stops at the depth limit. */
function findViolation(value: unknown, depth: number, limits: InputLimits): Violation | undefined {
  if (typeof value === 'string') return value.length > limits.maxStringChars ? { kind: 'string', path: [] } : undefined;
  if (typeof value !== 'object' || value === null) return undefined;
  if (depth > limits.maxJsonDepth) return { kind: 'depth', path: [] };
  if (Array.isArray(value)) {
    for (let i = 0; i < value.length; i++) {
      const found = findViolation(value[i], depth + 1, limits);
      if (found !== undefined) return found.path.unshift(i), found;
    }
    return undefined;
  }
  for (const key in value) {
    if (key.length > limits.maxStringChars) return { kind: 'key', path: [] };
    const found = findViolation((value as Record<string, unknown>)[key], depth + 1, limits);
    if (found !== undefined) return found.path.unshift(key), found;
  }
  return undefined;
}

function limitError(violation: Violation, limits: InputLimits): RecallError {
  const param = paramOf(violation.path);
  const where = param ?? 'the request body';
  switch (violation.kind) {
    case 'string':
      return invalidField(param, `Invalid '${where}': string too long. Expected a string with maximum length ${limits.maxStringChars} (server.max_string_chars).`);
    case 'key':
      return invalidField(param, `Invalid '${where}': an object key is longer than ${limits.maxStringChars} characters (server.max_string_chars).`);
    case 'depth':
      return invalidField(param, `Invalid '${where}': nested deeper than ${limits.maxJsonDepth} levels of objects and arrays (server.max_json_depth).`);
  }
}

/** `messages[2].content`: property names joined with dots, array indices in brackets; null for the body itself. */
function paramOf(path: readonly (string | number)[]): string | null {
  let out = '';
  for (const segment of path) {
    if (typeof segment === 'number') out += `[${segment}]`;
    else out += out === '' ? segment : `.${segment}`;
  }
  return out === '' ? null : out;
}

/** Ajv's JSON pointer (`/messages/2/role`) as path segments; all-digit segments are array indices. */
function pointerPath(pointer: string): (string | number)[] {
  if (pointer === '') return [];
  return pointer.slice(1).split('/').map((raw) => {
    const segment = raw.replaceAll('~1', '/').replaceAll('~0', '~');
    return /^\d+$/.test(segment) ? Number(segment) : segment;
  });
}

function fieldError(error: ErrorObject | undefined, isBody: boolean): RecallError {
  if (error === undefined) return invalidField(null, 'The request is invalid.');
  const path = pointerPath(error.instancePath);
  const params = error.params as Record<string, unknown>;
  switch (error.keyword) {
    case 'required': {
      const param = paramOf([...path, String(params.missingProperty)]);
      return invalidField(param, `Missing required parameter: '${param}'.`);
    }
    case 'additionalProperties': {
      const param = paramOf([...path, String(params.additionalProperty)]);
      return invalidField(param, `Unrecognized request argument supplied: '${param}'.`);
    }
  }
  const param = paramOf(path);
  const where = param === null ? (isBody ? 'the request body' : 'the request') : `'${param}'`;
  switch (error.keyword) {
    case 'type':
      return invalidField(param, `Invalid type for ${where}: expected ${typeNames(params.type)}, but got ${typeOf(error.data)} instead.`);
    case 'enum':
      return invalidField(param, `Invalid value for ${where}: expected one of ${(params.allowedValues as unknown[]).map((v) => JSON.stringify(v)).join(', ')}, but got ${quoted(error.data)} instead.`);
    case 'maxItems':
      return invalidField(param, `Invalid ${where}: array too long. Expected an array with maximum length ${String(params.limit)}, but got an array with length ${(error.data as unknown[]).length} instead.`);
    case 'minItems':
      return invalidField(param, `Invalid ${where}: array too short. Expected an array with minimum length ${String(params.limit)}, but got an array with length ${(error.data as unknown[]).length} instead.`);
    default:
      return invalidField(param, `Invalid ${where}: ${error.message ?? 'invalid value'}.`);
  }
}

function invalidField(param: string | null, message: string): RecallError {
  return new RecallError('invalidParameter', message, param);
}

const ARTICLE: Record<string, string> = { string: 'a string', array: 'an array', object: 'an object', integer: 'an integer', number: 'a number', boolean: 'a boolean', null: 'null' };

function typeNames(type: unknown): string {
  const names = (Array.isArray(type) ? type : String(type).split(',')).map((t) => ARTICLE[String(t)] ?? String(t));
  return names.length === 1 ? names[0]! : `${names.slice(0, -1).join(', ')} or ${names.at(-1)!}`;
}

function typeOf(value: unknown): string {
  if (value === null) return 'null';
  if (Array.isArray(value)) return 'an array';
  if (typeof value === 'number') return Number.isInteger(value) ? 'an integer' : 'a number';
  return ARTICLE[typeof value] ?? typeof value;
}
