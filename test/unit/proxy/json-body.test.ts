import { describe, expect, it } from 'vitest';
import { RecallError } from '../../../src/openai/errors.js';
import { RepeatedBodies } from '../../../src/proxy/json-body.js';

const body = (value: unknown) => Buffer.from(JSON.stringify(value));

describe('RepeatedBodies', () => {
  it('parses a body seen once as usual, and hands a repeat the same deep-frozen object', () => {
    const bodies = new RepeatedBodies();
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }] };
    const first = bodies.parse(body(request));
    expect(first).toEqual(request);
    expect(Object.isFrozen(first)).toBe(false);
    const second = bodies.parse(body(request));
    const third = bodies.parse(body(request));
    expect(second).toEqual(request);
    expect(third).toBe(second);
    expect(Object.isFrozen(second)).toBe(true);
    expect(Object.isFrozen((second.messages as unknown[])[0])).toBe(true);
    expect(() => { (second as Record<string, unknown>).model = 'other'; }).toThrow(TypeError);
  });

  it('never memoises large bodies, and refuses what is not a JSON object every time', () => {
    const bodies = new RepeatedBodies();
    const large = { model: 'm', messages: [{ role: 'user', content: 'x'.repeat(10_000) }] };
    bodies.parse(body(large));
    expect(Object.isFrozen(bodies.parse(body(large)))).toBe(false);
    for (let i = 0; i < 3; i++) {
      expect(() => bodies.parse(Buffer.from('{"broken'))).toThrow(RecallError);
      expect(() => bodies.parse(Buffer.from('[1,2]'))).toThrow(RecallError);
      expect(() => bodies.parse(Buffer.alloc(0))).toThrow(RecallError);
    }
  });
});
