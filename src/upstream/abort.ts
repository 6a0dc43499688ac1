// The abort signal an upstream call carries (an AbortSignal, or the proxy's lighter ClientDeparture emitter), and
// the two ways Recall waits on one outside undici: a place in the upstream queue and a retry's backoff.
import type { EventEmitter } from 'node:events';

/** An AbortSignal, or an EventEmitter with `aborted` that emits 'abort' (undici takes both). */
export type CallSignal = AbortSignal | (EventEmitter & { aborted: boolean });

/** Calls `listener` once when `signal` aborts; returns the function that stops listening. */
export function onAbort(signal: CallSignal, listener: () => void): () => void {
  if ('addEventListener' in signal) {
    signal.addEventListener('abort', listener, { once: true });
    return () => signal.removeEventListener('abort', listener);
  }
  signal.once('abort', listener);
  return () => signal.off('abort', listener);
}

/** Waits `ms`; true when the time passed, false as soon as `signal` aborts (the timer is then cleared). */
export function delay(ms: number, signal: CallSignal | undefined): Promise<boolean> {
  if (signal?.aborted === true) return Promise.resolve(false);
  return new Promise((resolve) => {
    const stop = signal === undefined ? undefined : onAbort(signal, () => {
      clearTimeout(timer);
      resolve(false);
    });
    const timer = setTimeout(() => {
      stop?.();
      resolve(true);
    }, ms);
  });
}
