import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { RecallError } from '../../../src/openai/errors.js';
import { UpstreamLimiter, type LimiterSettings, type QueueObserver, type Slot } from '../../../src/upstream/limiter.js';
import type { Priority } from '../../../src/upstream/priority.js';

const SETTINGS: LimiterSettings = { maxConcurrent: 1, queueMax: 100, queueTimeoutMs: 60_000 };

function recorder(): QueueObserver & { depths: string[]; waits: Priority[]; rejected: string[] } {
  const seen = { depths: [] as string[], waits: [] as Priority[], rejected: [] as string[] };
  return {
    ...seen,
    upstreamQueueDepth: (priority, depth) => void seen.depths.push(`${priority}=${depth}`),
    upstreamQueueWait: (priority) => void seen.waits.push(priority),
    upstreamQueueRejected: (reason) => void seen.rejected.push(reason),
  };
}

/** Lets settled promises run their continuations. */
const settle = () => new Promise((resolve) => setImmediate(resolve));

async function rejection(promise: Promise<unknown>): Promise<RecallError> {
  const error = await promise.then(() => undefined, (e: unknown) => e);
  expect(error).toBeInstanceOf(RecallError);
  return error as RecallError;
}

afterEach(() => {
  vi.useRealTimers();
});

describe('UpstreamLimiter', () => {
  it('grants up to max_concurrent slots at once; the next call waits until one is released', async () => {
    const limiter = new UpstreamLimiter({ ...SETTINGS, maxConcurrent: 2 });
    const first = await limiter.acquire('normal');
    await limiter.acquire('normal');
    let third: Slot | undefined;
    void limiter.acquire('normal').then((slot) => (third = slot));
    await settle();
    expect(third).toBeUndefined();
    expect(limiter.waiting).toBe(1);
    first.release();
    await settle();
    expect(third).toBeDefined();
    expect(limiter.inFlight).toBe(2);
    expect(limiter.waiting).toBe(0);
  });

  it('serves waiting calls high, then normal, then low, first come first served within a priority', async () => {
    const limiter = new UpstreamLimiter(SETTINGS);
    const holder = await limiter.acquire('normal');
    const order: string[] = [];
    const arrivals: [Priority, string][] = [['low', 'low-1'], ['normal', 'normal-1'], ['high', 'high-1'], ['low', 'low-2'], ['high', 'high-2'], ['normal', 'normal-2']];
    const granted = arrivals.map(([priority, name]) => limiter.acquire(priority).then((slot) => {
      order.push(name);
      slot.release();
    }));
    holder.release();
    await Promise.all(granted);
    expect(order).toEqual(['high-1', 'high-2', 'normal-1', 'normal-2', 'low-1', 'low-2']);
    expect(limiter.inFlight).toBe(0);
  });

  it('refuses a call when queue_max are already waiting: 503 upstream_queue_full with a Retry-After', async () => {
    const observer = recorder();
    const limiter = new UpstreamLimiter({ ...SETTINGS, queueMax: 2 }, observer);
    const holder = await limiter.acquire('normal');
    const waiting = [limiter.acquire('low'), limiter.acquire('high')];
    const refused = await rejection(limiter.acquire('high'));
    expect(refused.status).toBe(503);
    expect(refused.code).toBe('upstream_queue_full');
    expect(refused.retryAfterS).toBe(1);
    expect(refused.message).toMatch(/upstream\.queue_max/);
    expect(observer.rejected).toEqual(['full']);
    expect(limiter.waiting).toBe(2);
    holder.release();
    (await waiting[1]!).release();
    (await waiting[0]!).release();
    expect(limiter.inFlight).toBe(0);
  });

  it('with queue_max 0 refuses at once when every slot is taken', async () => {
    const limiter = new UpstreamLimiter({ ...SETTINGS, queueMax: 0 });
    await limiter.acquire('high');
    expect((await rejection(limiter.acquire('high'))).code).toBe('upstream_queue_full');
  });

  it('gives up a wait after queue_timeout_ms: 503 upstream_queue_timeout, and the call leaves the queue', async () => {
    vi.useFakeTimers();
    const observer = recorder();
    const limiter = new UpstreamLimiter({ ...SETTINGS, queueTimeoutMs: 5_000 }, observer);
    const holder = await limiter.acquire('normal');
    const waiting = rejection(limiter.acquire('low'));
    vi.advanceTimersByTime(5_000);
    const timedOut = await waiting;
    expect(timedOut.status).toBe(503);
    expect(timedOut.code).toBe('upstream_queue_timeout');
    expect(timedOut.retryAfterS).toBe(1);
    expect(timedOut.message).toMatch(/upstream\.queue_timeout_ms/);
    expect(observer.rejected).toEqual(['timeout']);
    expect(observer.depths).toEqual(['low=1', 'low=0']);
    expect(limiter.waiting).toBe(0);
    holder.release();
    expect(limiter.inFlight).toBe(0);
  });

  it.each([
    ['an AbortSignal', () => {
      const controller = new AbortController();
      return { signal: controller.signal, abort: () => controller.abort() };
    }],
    ['an abort emitter (ClientDeparture)', () => {
      const signal = Object.assign(new EventEmitter(), { aborted: false });
      return { signal, abort: () => { signal.aborted = true; signal.emit('abort'); } };
    }],
  ])('a call whose client leaves while it waits (%s) leaves the queue with 499 and never gets a slot', async (_name, makeSignal) => {
    const limiter = new UpstreamLimiter(SETTINGS);
    const holder = await limiter.acquire('normal');
    const { signal, abort } = makeSignal();
    const leaving = rejection(limiter.acquire('high', signal));
    const next = limiter.acquire('low');
    abort();
    const left = await leaving;
    expect(left.status).toBe(499);
    expect(left.code).toBe('client_closed_request');
    expect(limiter.waiting).toBe(1);
    holder.release();
    const slot = await next;
    expect(limiter.inFlight).toBe(1);
    slot.release();
    expect(limiter.inFlight).toBe(0);
  });

  it('refuses a call whose client has already left, without taking a slot', async () => {
    const limiter = new UpstreamLimiter(SETTINGS);
    const controller = new AbortController();
    controller.abort();
    expect((await rejection(limiter.acquire('normal', controller.signal))).status).toBe(499);
    expect(limiter.inFlight).toBe(0);
  });

  it('frees a slot once however often it is released', async () => {
    const limiter = new UpstreamLimiter({ ...SETTINGS, maxConcurrent: 2 });
    const first = await limiter.acquire('normal');
    await limiter.acquire('normal');
    first.release();
    first.release();
    expect(limiter.inFlight).toBe(1);
  });

  it('with max_concurrent 0 never queues', async () => {
    const observer = recorder();
    const limiter = new UpstreamLimiter({ ...SETTINGS, maxConcurrent: 0, queueMax: 0 }, observer);
    const slots = await Promise.all(Array.from({ length: 50 }, () => limiter.acquire('low')));
    expect(limiter.inFlight).toBe(50);
    expect(observer.waits).toHaveLength(50);
    for (const slot of slots) slot.release();
    expect(limiter.inFlight).toBe(0);
  });

  it('reports queue depth per priority and a wait for every granted slot', async () => {
    const observer = recorder();
    const limiter = new UpstreamLimiter(SETTINGS, observer);
    const holder = await limiter.acquire('normal');
    const high = limiter.acquire('high');
    const low = limiter.acquire('low');
    holder.release();
    (await high).release();
    (await low).release();
    expect(observer.depths).toEqual(['high=1', 'low=1', 'high=0', 'low=0']);
    expect(observer.waits).toEqual(['normal', 'high', 'low']);
  });
});
