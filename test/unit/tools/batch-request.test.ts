// Parsing both request forms into calls, and the 400s that name the field before anything runs.
import { describe, expect, it } from 'vitest';
import { RecallError } from '../../../src/openai/errors.js';
import { parseBatchRequest } from '../../../src/tools/batch-request.js';
import type { ToolSpec } from '../../../src/tools/registry.js';

const search: ToolSpec = { name: 'search', url: 'http://127.0.0.1:9/s', method: 'POST', headers: {}, timeoutMs: 1000, access: 'read', cacheTtlS: undefined, affects: [] };
const tools = new Map([['search', search]]);
const limits = { maxCalls: 3, maxConcurrency: 8 };

function problem(body: unknown): { code: string; param: string | null; message: string } {
  try {
    parseBatchRequest(body, tools, limits);
  } catch (err) {
    if (err instanceof RecallError) return { code: err.code, param: err.param, message: err.message };
    throw err;
  }
  throw new Error('no error');
}

describe('parseBatchRequest', () => {
  it('reads the calls form with depends_on as indices', () => {
    const parsed = parseBatchRequest({ calls: [{ id: 'a', name: 'search', arguments: { q: 1 } }, { id: 'b', name: 'search', depends_on: ['a'] }], max_concurrency: 2 }, tools, limits);
    expect(parsed.form).toBe('calls');
    expect(parsed.maxConcurrency).toBe(2);
    expect(parsed.calls.map((c) => [c.index, c.id, c.tool.name, c.arguments, c.dependsOn])).toEqual([[0, 'a', 'search', { q: 1 }, []], [1, 'b', 'search', {}, [0]]]);
  });

  it('reads OpenAI tool_calls with JSON-string arguments', () => {
    const parsed = parseBatchRequest({ tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'search', arguments: '{"q":"x"}' } }] }, tools, limits);
    expect(parsed.form).toBe('tool_calls');
    expect(parsed.calls[0]).toMatchObject({ id: 'call_1', arguments: { q: 'x' }, dependsOn: [] });
  });

  it('caps max_concurrency at tools.max_concurrency', () => {
    expect(parseBatchRequest({ calls: [], max_concurrency: 100 }, tools, limits).maxConcurrency).toBe(8);
  });

  it.each([
    [{ calls: [], tool_calls: [] }, 'invalid_parameter', 'calls'],
    [{ calls: {} }, 'invalid_parameter', 'calls'],
    [[], 'invalid_parameter', null],
    [{ calls: [1, 2, 3, 4] }, 'invalid_parameter', 'calls'],
    [{ calls: [{ name: 'search' }] }, 'invalid_parameter', 'calls[0].id'],
    [{ calls: [{ id: 'a', name: 'search', depends_on: 'b' }] }, 'invalid_parameter', 'calls[0].depends_on'],
    [{ calls: [{ id: 'a', name: 'search', arguments: [1] }] }, 'invalid_tool_arguments', 'calls[0].arguments'],
    [{ tool_calls: [{ id: 'a', type: 'custom', function: { name: 'search' } }] }, 'invalid_parameter', 'tool_calls[0].type'],
    [{ tool_calls: [{ id: 'a', function: { name: 'search', arguments: { q: 1 } } }] }, 'invalid_tool_arguments', 'tool_calls[0].function.arguments'],
    [{ tool_calls: [{ id: 'a', function: { name: 'search', arguments: '"just a string"' } }] }, 'invalid_tool_arguments', 'tool_calls[0].function.arguments'],
    [{ tool_calls: [{ id: 'a', function: { name: 'other' } }] }, 'unknown_tool', 'tool_calls[0].function.name'],
  ])('rejects %j', (body, code, param) => {
    expect(problem(body)).toMatchObject({ code, param });
  });

  it('names the earlier call in a duplicate id message', () => {
    expect(problem({ calls: [{ id: 'a', name: 'search' }, { id: 'a', name: 'search' }] }).message).toBe('calls[1].id: "a" is also the id of calls[0]; ids must be unique.');
  });
});
