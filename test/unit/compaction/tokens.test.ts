import { describe, expect, it } from 'vitest';
import { encodingFor, TokenCounter } from '../../../src/compaction/tokens.js';

describe('token counts', () => {
  it('matches the prompt_tokens OpenAI bills for a one-line user message (gpt-4o-mini: 8)', () => {
    expect(new TokenCounter('gpt-4o-mini').conversation([{ role: 'user', content: 'hi' }])).toBe(8);
  });

  it('matches the OpenAI cookbook count for a system and user message on gpt-3.5-turbo', () => {
    // 3 priming + (3 + "system" 1 + 4) + (3 + "user" 1 + "hello world" 2)
    const messages = [{ role: 'system', content: 'You are helpful.' }, { role: 'user', content: 'hello world' }];
    expect(new TokenCounter('gpt-3.5-turbo').conversation(messages)).toBe(17);
  });

  it('counts a name as one more token plus its text', () => {
    const counter = new TokenCounter('gpt-4o');
    const plain = counter.message({ role: 'user', content: 'hi' });
    expect(counter.message({ role: 'user', content: 'hi', name: 'bob' })).toBe(plain + 1 + counter.text('bob'));
  });

  it('counts tool calls and tool results', () => {
    const counter = new TokenCounter('gpt-4o');
    const call = { role: 'assistant', content: null, tool_calls: [{ id: 'call_1', type: 'function', function: { name: 'get_weather', arguments: '{"city":"Paris"}' } }] };
    expect(counter.message(call)).toBe(3 + counter.text('assistant') + 3 + counter.text('get_weather') + counter.text('{"city":"Paris"}'));
    const result = { role: 'tool', tool_call_id: 'call_1', content: '18 degrees and sunny' };
    expect(counter.message(result)).toBe(3 + counter.text('tool') + counter.text('18 degrees and sunny'));
  });

  it('counts text parts of array content', () => {
    const counter = new TokenCounter('gpt-4o');
    expect(counter.message({ role: 'user', content: [{ type: 'text', text: 'hello world' }] })).toBe(counter.message({ role: 'user', content: 'hello world' }));
  });

  it('picks the encoding by model and falls back to o200k_base', () => {
    expect(encodingFor('gpt-4o-mini')).toBe('o200k_base');
    expect(encodingFor('gpt-4-turbo')).toBe('cl100k_base');
    expect(encodingFor('gpt-3.5-turbo')).toBe('cl100k_base');
    expect(encodingFor('o3-mini')).toBe('o200k_base');
    expect(encodingFor('llama-3-70b')).toBe('o200k_base');
  });
});
