// The executor's rules seen through the order in which calls start and end: parallel reads up to the limit, barriers,
// failure isolation, per-call timeouts and the batch deadline. No timing is asserted.
import { describe, expect, it } from 'vitest';
import { executeBatch, type CallResult, type ExecutableCall } from '../../../src/tools/executor.js';
import { planOrder, type PlanInput } from '../../../src/tools/plan.js';

interface Scripted extends PlanInput {
  fail?: boolean;
  hang?: boolean;
  timeoutMs?: number;
}

/** Runs calls whose bodies resolve on the next turns; records start and end order. */
async function run(calls: Scripted[], options: { maxConcurrency?: number; deadlineMs?: number; signal?: AbortSignal } = {}) {
  const log: string[] = [];
  let inFlight = 0;
  let peak = 0;
  const executable: ExecutableCall[] = calls.map((c) => ({ id: c.id, timeoutMs: c.timeoutMs ?? 60_000, dependsOn: c.dependsOn }));
  const outcome = await executeBatch(executable, planOrder(calls), {
    maxConcurrency: options.maxConcurrency ?? 8,
    deadlineMs: options.deadlineMs ?? 60_000,
    signal: options.signal,
    run: (i, signal) => new Promise<CallResult>((resolve, reject) => {
      const call = calls[i]!;
      log.push(`start ${call.id}`);
      inFlight += 1;
      peak = Math.max(peak, inFlight);
      signal.addEventListener('abort', () => { inFlight -= 1; log.push(`abort ${call.id}`); });
      if (call.hang) return;
      setImmediate(() => {
        inFlight -= 1;
        log.push(`end ${call.id}`);
        if (call.fail) reject(new Error(`${call.id} broke`));
        else resolve({ result: { from: call.id }, cached: false });
      });
    }),
  });
  return { ...outcome, log, peak };
}

const read = (id: string, more: Partial<Scripted> = {}): Scripted => ({ id, access: 'read', dependsOn: [], ...more });
const write = (id: string, more: Partial<Scripted> = {}): Scripted => ({ id, access: 'write', dependsOn: [], ...more });

describe('executeBatch', () => {
  it('answers an empty batch at once', async () => {
    expect(await run([])).toMatchObject({ reports: [], concurrencyUsed: 0 });
  });

  it('starts independent reads together and reports in input order', async () => {
    const { log, reports, concurrencyUsed } = await run([read('a'), read('b'), read('c')]);
    expect(log.slice(0, 3)).toEqual(['start a', 'start b', 'start c']);
    expect(concurrencyUsed).toBe(3);
    expect(reports.map((r) => [r.id, r.status])).toEqual([['a', 'ok'], ['b', 'ok'], ['c', 'ok']]);
    expect(reports[1]).toMatchObject({ result: { from: 'b' }, cached: false });
  });

  it('runs at most max_concurrency at once', async () => {
    const { peak, concurrencyUsed, reports } = await run([read('a'), read('b'), read('c'), read('d'), read('e')], { maxConcurrency: 2 });
    expect(peak).toBe(2);
    expect(concurrencyUsed).toBe(2);
    expect(reports.every((r) => r.status === 'ok')).toBe(true);
  });

  it('treats a write as a barrier: earlier calls end before it starts, later ones start after it ends', async () => {
    const { log } = await run([read('a'), read('b'), write('w'), read('c'), read('d')]);
    const at = (entry: string) => log.indexOf(entry);
    expect(at('start w')).toBeGreaterThan(Math.max(at('end a'), at('end b')));
    expect(Math.min(at('start c'), at('start d'))).toBeGreaterThan(at('end w'));
    expect(at('start d')).toBeLessThan(at('end c'));
  });

  it('keeps writes in input order', async () => {
    const { log } = await run([write('w1'), write('w2'), write('w3')]);
    expect(log).toEqual(['start w1', 'end w1', 'start w2', 'end w2', 'start w3', 'end w3']);
  });

  it('waits for explicit dependencies', async () => {
    const { log } = await run([read('a', { dependsOn: [1] }), read('b')]);
    expect(log).toEqual(['start b', 'end b', 'start a', 'end a']);
  });

  it('skips the dependants of a failed call with the reason and runs the rest', async () => {
    const { reports } = await run([read('a', { fail: true }), read('b', { dependsOn: [0] }), read('c', { dependsOn: [1] }), read('d')]);
    expect(reports.map((r) => r.status)).toEqual(['error', 'skipped', 'skipped', 'ok']);
    expect(reports[0]).toMatchObject({ error: 'a broke' });
    expect(reports[1]).toMatchObject({ error: 'dependency a failed: a broke' });
    expect(reports[2]).toMatchObject({ error: expect.stringContaining('dependency b was skipped') });
  });

  it('does not skip calls after a failed write: a barrier orders, it does not propagate failure', async () => {
    const { reports } = await run([write('w', { fail: true }), read('a')]);
    expect(reports.map((r) => r.status)).toEqual(['error', 'ok']);
  });

  it('times a call out on its own timeout and skips its dependants', async () => {
    const { reports, log } = await run([read('slow', { hang: true, timeoutMs: 20 }), read('next', { dependsOn: [0] }), read('free')]);
    expect(reports.map((r) => r.status)).toEqual(['timeout', 'skipped', 'ok']);
    expect(reports[0]).toMatchObject({ error: "no answer within the tool's timeout of 20 ms" });
    expect(log).toContain('abort slow');
  });

  it('ends the batch at its deadline: running calls time out, calls not started are skipped', async () => {
    const { reports } = await run([read('hang', { hang: true }), read('after', { dependsOn: [0] })], { deadlineMs: 20 });
    expect(reports[0]).toMatchObject({ status: 'timeout', error: 'the batch deadline of 20 ms passed while it ran' });
    expect(reports[1]).toMatchObject({ status: 'skipped', error: 'the batch deadline of 20 ms passed before it started' });
  });

  it('stops the batch when its signal aborts (the client left)', async () => {
    const client = new AbortController();
    setTimeout(() => client.abort(), 20);
    const { reports, log } = await run([read('hang', { hang: true }), read('after', { dependsOn: [0] })], { signal: client.signal });
    expect(reports[0]).toMatchObject({ status: 'timeout', error: 'the client closed the connection while it ran' });
    expect(reports[1]).toMatchObject({ status: 'skipped', error: 'the client closed the connection before it started' });
    expect(log).toContain('abort hang');
  });

  it('runs nothing when its signal has already aborted', async () => {
    const { reports, log } = await run([read('a'), read('b')], { signal: AbortSignal.abort() });
    expect(reports.map((r) => r.status)).toEqual(['skipped', 'skipped']);
    expect(log).toEqual([]);
  });
});
