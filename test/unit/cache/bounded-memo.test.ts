// The frozen-body memo shared by the exact key memo and the semantic probe memo.
import { describe, expect, it } from 'vitest';
import { FrozenBodyMemo } from '../../../src/cache/bounded-memo.js';

describe('FrozenBodyMemo', () => {
  it('remembers a value per body identity and scope, and at most 64 scopes of one body', () => {
    const memo = new FrozenBodyMemo<string>();
    const body = Object.freeze({ model: 'm' });
    const sameContent = Object.freeze({ model: 'm' });
    for (let i = 0; i < 70; i++) memo.set(body, `tenant-${i}`, `value-${i}`);
    expect(memo.get(body, 'tenant-0')).toBe('value-0');
    expect(memo.get(body, 'tenant-63')).toBe('value-63');
    expect(memo.get(body, 'tenant-64')).toBeUndefined();
    expect(memo.get(sameContent, 'tenant-0')).toBeUndefined();
    memo.set(sameContent, 'tenant-64', 'other');
    expect(memo.get(sameContent, 'tenant-64')).toBe('other');
  });
});
