// What a request is estimated to cost before its call, the in-memory budget window, and OpenAI's duration format.
import { describe, expect, it } from 'vitest';
import { TokenCounter } from '../../../src/compaction/tokens.js';
import { resetDuration } from '../../../src/limits/ratelimit-headers.js';
import { MemoryBudgetStore, estimateTokens } from '../../../src/limits/token-budget.js';

describe('estimateTokens', () => {
  const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: 'Name three rivers.' }];
  const prompt = new TokenCounter('gpt-4o-mini').conversation(messages);

  it('counts a chat prompt as compaction does, plus the completion it allows itself per choice', () => {
    expect(estimateTokens('/v1/chat/completions', { model: 'gpt-4o-mini', messages })).toBe(prompt);
    expect(estimateTokens('/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_tokens: 100 })).toBe(prompt + 100);
    expect(estimateTokens('/v1/chat/completions', { model: 'gpt-4o-mini', messages, max_completion_tokens: 50, max_tokens: 100, n: 2 })).toBe(prompt + 100);
  });

  it('counts completion prompts and embeddings inputs, token arrays by their length', () => {
    const counter = new TokenCounter('text-embedding-3-small');
    expect(estimateTokens('/v1/embeddings', { model: 'text-embedding-3-small', input: ['one river', 'two rivers'] })).toBe(counter.text('one river') + counter.text('two rivers'));
    expect(estimateTokens('/v1/embeddings', { model: 'text-embedding-3-small', input: [[1, 2, 3], [4]] })).toBe(4);
    expect(estimateTokens('/v1/completions', { model: 'gpt-3.5-turbo-instruct', prompt: 'Once upon', max_tokens: 16 })).toBe(new TokenCounter('gpt-3.5-turbo-instruct').text('Once upon') + 16);
  });
});

describe('MemoryBudgetStore', () => {
  it('reserves within the limit, refuses past it, corrects, and starts again when the window ends', async () => {
    let now = 1_000;
    const store = new MemoryBudgetStore(60_000, () => now);
    expect(await store.reserve('a', 60, 100)).toEqual({ allowed: true, used: 60, resetMs: 60_000 });
    now += 10_000;
    expect(await store.reserve('a', 41, 100)).toEqual({ allowed: false, used: 60, resetMs: 50_000 });
    expect(await store.reserve('b', 41, 100)).toMatchObject({ allowed: true, used: 41 });
    await store.adjust('a', -20);
    expect(await store.reserve('a', 60, 100)).toEqual({ allowed: true, used: 100, resetMs: 50_000 });
    await store.adjust('a', -500);
    expect(await store.reserve('a', 0, 100)).toMatchObject({ used: 0 });
    now += 50_000;
    expect(await store.reserve('a', 100, 100)).toEqual({ allowed: true, used: 100, resetMs: 60_000 });
  });
});

describe('resetDuration', () => {
  it.each([[0, '0ms'], [250, '250ms'], [1_000, '1s'], [1_500, '1.5s'], [59_999, '59.999s'], [60_000, '1m0s'], [360_000, '6m0s'], [61_250, '1m1.25s']])('%d ms → %s', (ms, text) => {
    expect(resetDuration(ms)).toBe(text);
  });
});
