import { describe, expect, it } from 'vitest';
import { ThrottledWarning } from '../../../src/log/throttled-warning.js';

describe('ThrottledWarning', () => {
  it('logs the first warning at once, then at most one per interval', () => {
    const lines: string[] = [];
    let now = 0;
    const warning = new ThrottledWarning({ warn: (_fields, message) => void lines.push(message) }, 10_000, () => now);
    warning.warn({}, 'first');
    now = 9_999;
    warning.warn({}, 'too soon');
    now = 10_000;
    warning.warn({}, 'again');
    expect(lines).toEqual(['first', 'again']);
  });
});
