import { describe, expect, it } from 'vitest';
import { RecallError } from '../../../src/openai/errors.js';
import { TokenCounter } from '../../../src/compaction/tokens.js';
import { truncate } from '../../../src/compaction/truncation.js';

const counter = new TokenCounter('gpt-4o-mini');
const words = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

const toolCall = (id: string) => ({ role: 'assistant', content: null, tool_calls: [{ id, type: 'function', function: { name: 'lookup', arguments: '{"q":"x"}' } }] });
const toolResult = (id: string, text: string) => ({ role: 'tool', tool_call_id: id, content: text });

describe('truncation', () => {
  it('keeps system messages and the newest messages that fit, in order', () => {
    const messages = [
      { role: 'system', content: 'Be brief.' },
      { role: 'user', content: words(50, 'a') },
      { role: 'assistant', content: words(50, 'b') },
      { role: 'user', content: 'last question' },
    ];
    const budget = counter.conversation([messages[0]!, messages[2]!, messages[3]!]);
    const out = truncate(messages, budget, counter, []);
    expect(out.messages).toEqual([messages[0], messages[2], messages[3]]);
    expect(out.tokens).toBe(budget);
    expect(out.dropped).toBe(1);
  });

  it('keeps pinned messages wherever they are', () => {
    const messages = [
      { role: 'user', content: 'PINNED: the user id is 42' },
      { role: 'assistant', content: words(80, 'b') },
      { role: 'user', content: 'and now?' },
    ];
    const budget = counter.conversation([messages[0]!, messages[2]!]);
    const out = truncate(messages, budget, counter, [/^PINNED:/]);
    expect(out.messages).toEqual([messages[0], messages[2]]);
  });

  it('never separates a tool call from its results', () => {
    const messages = [
      { role: 'user', content: words(40, 'old') },
      toolCall('c1'),
      toolResult('c1', words(30, 'r')),
      { role: 'user', content: 'thanks, and?' },
    ];
    // Room for the result and the last message, but not for the call too: the pair goes together.
    const budget = counter.conversation([messages[2]!, messages[3]!]) + 2;
    const out = truncate(messages, budget, counter, []);
    expect(out.messages).toEqual([messages[3]]);
    const roomy = truncate(messages, counter.conversation(messages.slice(1)), counter, []);
    expect(roomy.messages).toEqual(messages.slice(1));
  });

  it('never leaves an orphan tool message first', () => {
    const messages = [toolResult('gone', 'stale result'), { role: 'user', content: 'hello' }];
    const out = truncate(messages, 1000, counter, []);
    expect(out.messages).toEqual([messages[1]]);
  });

  it('refuses a budget the newest message cannot fit, naming target_tokens', () => {
    const messages = [{ role: 'system', content: 'Be brief.' }, { role: 'user', content: words(100, 'x') }];
    try {
      truncate(messages, 20, counter, []);
      expect.fail('expected an error');
    } catch (err) {
      expect(err).toBeInstanceOf(RecallError);
      expect((err as RecallError).code).toBe('compaction_budget_unreachable');
      expect((err as RecallError).param).toBe('target_tokens');
    }
  });
});
