// The upstream queue: caps how many upstream calls run at once; a call that finds every slot taken waits its turn,
// high before normal before low and first come, first served within a priority. The queue is bounded in length and
// in time, and a call whose client leaves gives up its place.
import { clientClosedRequest, upstreamQueueFull, upstreamQueueTimeout } from '../openai/errors.js';
import { onAbort, type CallSignal } from './abort.js';
import { PRIORITIES, type Priority } from './priority.js';

export interface LimiterSettings {
  /** Most calls holding a slot at once; 0: no cap. */
  maxConcurrent: number;
  /** Most calls waiting for a slot; the next one is refused at once (503 upstream_queue_full). */
  queueMax: number;
  /** Longest wait for a slot (then 503 upstream_queue_timeout). */
  queueTimeoutMs: number;
}

/** What the queue reports as it works; the metrics catalog implements it. */
export interface QueueObserver {
  upstreamQueueDepth(priority: Priority, depth: number): void;
  /** Every granted slot, with how long it was waited for (0 when one was free). */
  upstreamQueueWait(priority: Priority, seconds: number): void;
  upstreamQueueRejected(reason: 'full' | 'timeout'): void;
}

/** A slot held for one upstream call. `release` frees it; calls after the first do nothing. */
export interface Slot {
  release(): void;
}

class HeldSlot implements Slot {
  private held = true;

  constructor(private readonly free: () => void) {}

  release(): void {
    if (!this.held) return;
    this.held = false;
    this.free();
  }
}

interface Waiter {
  priority: Priority;
  enqueuedAt: number;
  resolve(slot: Slot): void;
  reject(error: Error): void;
  timer: NodeJS.Timeout | undefined;
  stopListening: (() => void) | undefined;
}

export class UpstreamLimiter {
  private active = 0;
  private waitingCount = 0;
  /** One FIFO per priority, served in PRIORITIES order; a Set keeps arrival order and removes from the middle in O(1). */
  private readonly queues: Readonly<Record<Priority, Set<Waiter>>> = { high: new Set(), normal: new Set(), low: new Set() };
  private readonly freeSlot = (): void => {
    this.active--;
    this.grantWaiting();
  };

  constructor(
    private readonly settings: LimiterSettings,
    private readonly observer?: QueueObserver,
    private readonly now: () => number = () => performance.now(),
  ) {}

  /** Calls holding a slot. */
  get inFlight(): number {
    return this.active;
  }

  /** Calls waiting for a slot. */
  get waiting(): number {
    return this.waitingCount;
  }

  /**
   * A slot for one upstream call, now or when its turn comes. Rejects with a RecallError: 503 when the queue is full
   * or the wait times out, 499 when `signal` aborts first (the call then leaves the queue).
   */
  acquire(priority: Priority, signal?: CallSignal): Promise<Slot> {
    if (signal?.aborted === true) return Promise.reject(clientClosedRequest());
    if (this.waitingCount === 0 && this.hasFreeSlot()) {
      this.active++;
      this.observer?.upstreamQueueWait(priority, 0);
      return Promise.resolve(new HeldSlot(this.freeSlot));
    }
    if (this.waitingCount >= this.settings.queueMax) {
      this.observer?.upstreamQueueRejected('full');
      return Promise.reject(upstreamQueueFull(this.settings.queueMax));
    }
    return new Promise<Slot>((resolve, reject) => {
      const waiter: Waiter = { priority, enqueuedAt: this.now(), resolve, reject, timer: undefined, stopListening: undefined };
      waiter.timer = setTimeout(() => {
        if (!this.leave(waiter)) return;
        this.observer?.upstreamQueueRejected('timeout');
        reject(upstreamQueueTimeout(this.settings.queueTimeoutMs));
      }, this.settings.queueTimeoutMs);
      if (signal !== undefined) {
        waiter.stopListening = onAbort(signal, () => {
          if (this.leave(waiter)) reject(clientClosedRequest());
        });
      }
      const queue = this.queues[priority];
      queue.add(waiter);
      this.waitingCount++;
      this.observer?.upstreamQueueDepth(priority, queue.size);
    });
  }

  private hasFreeSlot(): boolean {
    return this.settings.maxConcurrent === 0 || this.active < this.settings.maxConcurrent;
  }

  private grantWaiting(): void {
    while (this.waitingCount > 0 && this.hasFreeSlot()) {
      const waiter = this.first();
      if (waiter === undefined) return;
      this.leave(waiter);
      this.active++;
      this.observer?.upstreamQueueWait(waiter.priority, (this.now() - waiter.enqueuedAt) / 1000);
      waiter.resolve(new HeldSlot(this.freeSlot));
    }
  }

  private first(): Waiter | undefined {
    for (const priority of PRIORITIES) {
      for (const waiter of this.queues[priority]) return waiter;
    }
    return undefined;
  }

  /** Takes a waiter out of the queue; false when it had already left (granted, timed out or aborted). */
  private leave(waiter: Waiter): boolean {
    const queue = this.queues[waiter.priority];
    if (!queue.delete(waiter)) return false;
    this.waitingCount--;
    clearTimeout(waiter.timer);
    waiter.stopListening?.();
    this.observer?.upstreamQueueDepth(waiter.priority, queue.size);
    return true;
  }
}
