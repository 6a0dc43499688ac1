// Ordering rules: explicit edges, write barriers, explicit edges winning over barriers, and cycles as 400s.
import { describe, expect, it } from 'vitest';
import { RecallError } from '../../../src/openai/errors.js';
import { planOrder, type PlanInput } from '../../../src/tools/plan.js';

const read = (id: string, dependsOn: number[] = []): PlanInput => ({ id, access: 'read', dependsOn });
const write = (id: string, dependsOn: number[] = []): PlanInput => ({ id, access: 'write', dependsOn });

describe('planOrder', () => {
  it('leaves independent reads free', () => {
    expect(planOrder([read('a'), read('b'), read('c')])).toEqual([[], [], []]);
  });

  it('keeps explicit edges', () => {
    expect(planOrder([read('a'), read('b', [0])])).toEqual([[], [0]]);
  });

  it('makes a write wait for the calls before it and the calls after it wait for the write; writes keep input order', () => {
    expect(planOrder([read('a'), write('w1'), read('b'), write('w2'), read('c')])).toEqual([[], [0], [1], [0, 1, 2], [1, 3]]);
  });

  it('lets an explicit edge from an earlier read to a later write win over the barrier', () => {
    expect(planOrder([read('a', [1]), write('w')])).toEqual([[1], []]);
  });

  it('rejects a cycle of explicit edges naming the field', () => {
    const attempt = () => planOrder([read('a', [1]), read('b', [2]), read('c', [0])]);
    expect(attempt).toThrow(RecallError);
    expect(attempt).toThrow(/calls\[0\]\.depends_on: .*cycle.*a waits for b waits for c waits for a/);
  });

  it('rejects a self-dependency', () => {
    expect(() => planOrder([read('a', [0])])).toThrow(/cycle: a waits for a/);
  });

  it('rejects a cycle that only the barriers close, saying so', () => {
    // a waits for c (explicit); c is listed after the write so waits for it; the write waits for a, listed before it.
    expect(() => planOrder([read('a', [2]), write('w'), read('c')])).toThrow(/calls\[0\]\.depends_on: .*write barriers.*a waits for c waits for w waits for a/);
  });

  it('lets explicit edges decide where they contradict a barrier', () => {
    expect(planOrder([write('w', [2]), read('b'), read('a', [1])])).toEqual([[2], [], [1]]);
  });
});
