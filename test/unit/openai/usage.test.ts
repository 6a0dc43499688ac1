import { describe, expect, it } from 'vitest';
import { usageOf } from '../../../src/openai/usage.js';

describe('usageOf', () => {
  it('reads usage from a completion, nested details included', () => {
    const body = Buffer.from(JSON.stringify({ id: 'x', choices: [{ message: { content: 'the word "usage": {not this}' } }], usage: { prompt_tokens: 12, completion_tokens: 5, total_tokens: 17, prompt_tokens_details: { cached_tokens: 0 } } }));
    expect(usageOf(body)).toEqual({ promptTokens: 12, completionTokens: 5 });
  });
  it('reads embeddings usage (no completion tokens)', () => {
    expect(usageOf(Buffer.from('{"data":[],"usage":{"prompt_tokens":8,"total_tokens":8}}'))).toEqual({ promptTokens: 8, completionTokens: 0 });
  });
  it('is undefined without usage or with a broken one', () => {
    expect(usageOf(Buffer.from('{"choices":[]}'))).toBeUndefined();
    expect(usageOf(Buffer.from('{"usage":{"prompt_tokens":'))).toBeUndefined();
  });
  it('reads a buffer once: the same buffer gives the same reading, an equal copy is read on its own', () => {
    const body = Buffer.from('{"usage":{"prompt_tokens":3,"completion_tokens":4}}');
    const first = usageOf(body);
    expect(usageOf(body)).toBe(first);
    const copy = Buffer.from(body);
    expect(usageOf(copy)).not.toBe(first);
    expect(usageOf(copy)).toEqual(first);
  });
});
