// Runs a planned batch: a call starts once everything it waits for has finished, at most `maxConcurrency` at once,
// in input order among the ready ones. Each call has its own timeout and the batch a deadline; a call whose explicit
// dependency did not succeed is skipped with the reason (barrier edges only order, they do not propagate failures).
import type { WaitList } from './plan.js';

export type CallStatus = 'ok' | 'error' | 'timeout' | 'skipped';

export interface ExecutableCall {
  id: string;
  timeoutMs: number;
  /** Explicit dependencies, as indices: a failure among them skips this call. */
  dependsOn: readonly number[];
}

/** What running one call gave; `run` throws for a failure. */
export interface CallResult {
  result: unknown;
  cached: boolean;
}

export type CallReport = { id: string; status: CallStatus; durationMs: number; cached: boolean } & (
  | { status: 'ok'; result: unknown }
  | { status: 'error' | 'timeout' | 'skipped'; error: string }
);

export interface ExecuteOptions {
  maxConcurrency: number;
  deadlineMs: number;
  run(index: number, signal: AbortSignal): Promise<CallResult>;
  /** Aborts the batch as the deadline does (the client went away). */
  signal?: AbortSignal;
  /** Called as each call ends (skips included), for metrics. */
  onSettled?(index: number, report: CallReport): void;
}

export interface BatchOutcome {
  reports: CallReport[];
  /** Most calls that ran at once. */
  concurrencyUsed: number;
}

class CallTimeout extends Error {}

export function executeBatch(calls: readonly ExecutableCall[], waits: WaitList, options: ExecuteOptions): Promise<BatchOutcome> {
  const reports: (CallReport | undefined)[] = new Array(calls.length).fill(undefined);
  const started = new Array<boolean>(calls.length).fill(false);
  const batch = new AbortController();
  let running = 0;
  let concurrencyUsed = 0;
  let left = calls.length;
  return new Promise((resolve) => {
    if (left === 0) return resolve({ reports: [], concurrencyUsed: 0 });
    let stopReason = '';
    const stop = (reason: string): void => {
      if (batch.signal.aborted) return;
      stopReason = reason;
      batch.abort();
      calls.forEach((call, i) => {
        if (!started[i]) settle(i, { id: call.id, status: 'skipped', durationMs: 0, cached: false, error: `${reason} before it started` });
      });
    };
    const deadline = setTimeout(() => stop(`the batch deadline of ${options.deadlineMs} ms passed`), options.deadlineMs);
    const clientGone = (): void => stop('the client closed the connection');
    options.signal?.addEventListener('abort', clientGone, { once: true });

    const settle = (i: number, report: CallReport): void => {
      if (reports[i] !== undefined) return;
      started[i] = true;
      reports[i] = report;
      options.onSettled?.(i, report);
      left -= 1;
      if (left === 0) {
        clearTimeout(deadline);
        options.signal?.removeEventListener('abort', clientGone);
        resolve({ reports: reports as CallReport[], concurrencyUsed });
        return;
      }
      schedule();
    };

    const schedule = (): void => {
      for (let i = 0; i < calls.length; i++) {
        if (started[i] || batch.signal.aborted) continue;
        if (!waits[i]!.every((w) => reports[w] !== undefined)) continue;
        const failed = calls[i]!.dependsOn.find((d) => reports[d]!.status !== 'ok');
        if (failed !== undefined) {
          const cause = reports[failed]!;
          const why = cause.status === 'ok' ? '' : `: ${cause.error}`;
          settle(i, { id: calls[i]!.id, status: 'skipped', durationMs: 0, cached: false, error: `dependency ${calls[failed]!.id} ${cause.status === 'skipped' ? 'was skipped' : cause.status === 'timeout' ? 'timed out' : 'failed'}${why}` });
          return; // settle scheduled again
        }
        if (running >= options.maxConcurrency) return;
        start(i);
      }
    };

    const start = (i: number): void => {
      const call = calls[i]!;
      started[i] = true;
      running += 1;
      concurrencyUsed = Math.max(concurrencyUsed, running);
      const own = new AbortController();
      const timer = setTimeout(() => own.abort(new CallTimeout()), call.timeoutMs);
      const signal = AbortSignal.any([own.signal, batch.signal]);
      const startedAt = performance.now();
      const aborted = new Promise<never>((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason), { once: true }));
      Promise.race([options.run(i, signal), aborted]).then(
        (done): CallReport => ({ id: call.id, status: 'ok', durationMs: elapsed(startedAt), cached: done.cached, result: done.result }),
        (err: unknown): CallReport => {
          const durationMs = elapsed(startedAt);
          if (own.signal.aborted) return { id: call.id, status: 'timeout', durationMs, cached: false, error: `no answer within the tool's timeout of ${call.timeoutMs} ms` };
          if (batch.signal.aborted) return { id: call.id, status: 'timeout', durationMs, cached: false, error: `${stopReason} while it ran` };
          return { id: call.id, status: 'error', durationMs, cached: false, error: err instanceof Error ? err.message : String(err) };
        },
      ).then((report) => {
        clearTimeout(timer);
        running -= 1;
        settle(i, report);
      });
    };

    if (options.signal?.aborted) clientGone();
    else schedule();
  });
}

function elapsed(since: number): number {
  return Math.round((performance.now() - since) * 10) / 10;
}
