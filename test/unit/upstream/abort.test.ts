import { EventEmitter } from 'node:events';
import { describe, expect, it } from 'vitest';
import { delay, onAbort } from '../../../src/upstream/abort.js';

describe('delay', () => {
  it('is true once the time has passed', async () => {
    expect(await delay(1, undefined)).toBe(true);
    expect(await delay(1, new AbortController().signal)).toBe(true);
  });

  it('is false as soon as the signal aborts, an AbortSignal or an abort emitter alike', async () => {
    const controller = new AbortController();
    const waiting = delay(60_000, controller.signal);
    controller.abort();
    expect(await waiting).toBe(false);

    const departure = Object.assign(new EventEmitter(), { aborted: false });
    const waitingToo = delay(60_000, departure);
    departure.aborted = true;
    departure.emit('abort');
    expect(await waitingToo).toBe(false);
    expect(departure.listenerCount('abort')).toBe(0);
  });

  it('is false at once when the signal has already aborted', async () => {
    expect(await delay(60_000, AbortSignal.abort())).toBe(false);
  });
});

describe('onAbort', () => {
  it('stops listening when told to', () => {
    const departure = Object.assign(new EventEmitter(), { aborted: false });
    let calls = 0;
    const stop = onAbort(departure, () => calls++);
    stop();
    departure.emit('abort');
    expect(calls).toBe(0);
    expect(departure.listenerCount('abort')).toBe(0);
  });
});
