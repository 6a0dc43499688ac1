// Parses a POST /recall/tools/batch body in either form — Recall's `calls` with `depends_on`, or OpenAI's
// `tool_calls` as an assistant message carries them — into validated calls; every mistake is a 400 naming the field.
import { RecallError, quoted } from '../openai/errors.js';
import type { ToolSpec } from './registry.js';

/** One call to run, its dependencies as indices into the batch. */
export interface BatchCall {
  index: number;
  id: string;
  tool: ToolSpec;
  arguments: Readonly<Record<string, unknown>>;
  /** Explicit `depends_on`, as indices. */
  dependsOn: readonly number[];
}

export interface BatchRequest {
  calls: BatchCall[];
  /** Undefined: the configured tools.max_concurrency. */
  maxConcurrency: number | undefined;
  /** Which form the request used, for the field names of later errors. */
  form: 'calls' | 'tool_calls';
}

export interface BatchLimits {
  maxCalls: number;
  maxConcurrency: number;
}

export function parseBatchRequest(body: unknown, tools: ReadonlyMap<string, ToolSpec>, limits: BatchLimits): BatchRequest {
  if (typeof body !== 'object' || body === null || Array.isArray(body)) throw invalid('The body must be a JSON object with `calls` or `tool_calls`.', null);
  const raw = body as Record<string, unknown>;
  if (raw['calls'] !== undefined && raw['tool_calls'] !== undefined) throw invalid('Send either `calls` or `tool_calls`, not both.', 'calls');
  const form = raw['tool_calls'] !== undefined ? 'tool_calls' : 'calls';
  const list = raw[form];
  if (!Array.isArray(list)) throw invalid('`calls` (or `tool_calls`) must be an array.', form);
  if (list.length > limits.maxCalls) throw invalid(`A batch holds at most ${limits.maxCalls} calls (tools.max_calls); this one has ${list.length}.`, form);
  const maxConcurrency = parseMaxConcurrency(raw['max_concurrency'], limits.maxConcurrency);
  const drafts = list.map((item, i) => (form === 'calls' ? draftCall(item, `calls[${i}]`) : draftToolCall(item, `tool_calls[${i}]`)));
  const indexById = new Map<string, number>();
  drafts.forEach((draft, i) => {
    if (indexById.has(draft.id)) throw new RecallError('duplicateCallId', `${draft.at}.id: ${quoted(draft.id)} is also the id of ${form}[${indexById.get(draft.id)}]; ids must be unique.`, `${draft.at}.id`);
    indexById.set(draft.id, i);
  });
  const calls = drafts.map((draft, index): BatchCall => {
    const tool = tools.get(draft.name);
    if (tool === undefined) throw new RecallError('unknownTool', `${draft.nameAt}: no tool named ${quoted(draft.name)} is configured.`, draft.nameAt);
    const dependsOn = draft.dependsOn.map((dep, j) => {
      const found = indexById.get(dep);
      if (found === undefined) throw new RecallError('unknownDependency', `${draft.at}.depends_on[${j}]: no call in this batch has the id ${quoted(dep)}.`, `${draft.at}.depends_on[${j}]`);
      return found;
    });
    return { index, id: draft.id, tool, arguments: draft.arguments, dependsOn };
  });
  return { calls, maxConcurrency, form };
}

interface Draft {
  at: string;
  nameAt: string;
  id: string;
  name: string;
  arguments: Record<string, unknown>;
  dependsOn: string[];
}

function draftCall(item: unknown, at: string): Draft {
  const raw = object(item, at);
  const id = string(raw['id'], `${at}.id`);
  const name = string(raw['name'], `${at}.name`);
  const args = raw['arguments'] === undefined ? {} : typeof raw['arguments'] === 'string' ? jsonArguments(raw['arguments'], `${at}.arguments`) : argumentsObject(raw['arguments'], `${at}.arguments`);
  const deps = raw['depends_on'] ?? [];
  if (!Array.isArray(deps)) throw invalid(`${at}.depends_on must be an array of call ids.`, `${at}.depends_on`);
  const dependsOn = deps.map((dep, j) => string(dep, `${at}.depends_on[${j}]`));
  return { at, nameAt: `${at}.name`, id, name, arguments: args, dependsOn };
}

function draftToolCall(item: unknown, at: string): Draft {
  const raw = object(item, at);
  const id = string(raw['id'], `${at}.id`);
  if (raw['type'] !== undefined && raw['type'] !== 'function') throw invalid(`${at}.type must be "function".`, `${at}.type`);
  const fn = object(raw['function'], `${at}.function`);
  const name = string(fn['name'], `${at}.function.name`);
  const args = fn['arguments'] === undefined ? {} : jsonArguments(fn['arguments'], `${at}.function.arguments`);
  return { at, nameAt: `${at}.function.name`, id, name, arguments: args, dependsOn: [] };
}

function jsonArguments(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'string') throw new RecallError('invalidToolArguments', `${at} must be a string of JSON (as OpenAI sends it).`, at);
  let parsed: unknown;
  try {
    parsed = JSON.parse(value);
  } catch (err) {
    throw new RecallError('invalidToolArguments', `${at} is not valid JSON: ${(err as Error).message}`, at);
  }
  return argumentsObject(parsed, at);
}

function argumentsObject(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw new RecallError('invalidToolArguments', `${at} must be a JSON object.`, at);
  return value as Record<string, unknown>;
}

function parseMaxConcurrency(value: unknown, ceiling: number): number | undefined {
  if (value === undefined) return undefined;
  if (typeof value !== 'number' || !Number.isInteger(value) || value < 1) throw invalid('max_concurrency must be a positive integer.', 'max_concurrency');
  return Math.min(value, ceiling);
}

function object(value: unknown, at: string): Record<string, unknown> {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) throw invalid(`${at} must be an object.`, at);
  return value as Record<string, unknown>;
}

function string(value: unknown, at: string): string {
  if (typeof value !== 'string' || value === '') throw invalid(`${at} must be a non-empty string.`, at);
  return value;
}

function invalid(message: string, param: string | null): RecallError {
  return new RecallError('invalidParameter', message, param);
}
