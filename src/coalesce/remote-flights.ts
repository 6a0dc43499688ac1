// Coalescing across instances on one Redis: the instance that takes a key's lock (SET NX PX) calls the upstream;
// the others wait for its "done" message on a pub/sub channel, not by polling, then read the entry it stored.
// The lock lives only while its holder refreshes it, so a crashed leader's lock expires within one lock TTL.
// On a Cluster each lock is one key (its Lua scripts touch only it) and the channel is cluster-wide pub/sub.
import { randomBytes } from 'node:crypto';
import { sideConnection, type RedisConnection } from '../cache/redis-connection.js';

/** The outcome of trying to lead a key across instances. */
export type LockAttempt =
  | { acquired: true; release(): Promise<void> }
  /** Another instance leads; its lock lapses within `ttlMs` unless refreshed. */
  | { acquired: false; ttlMs: number }
  /** Redis did not answer: coalesce locally only and go upstream (fail open). */
  | undefined;

/** Waits for the leader's message about one key; created before the lock attempt so no message is missed. */
export interface FlightWatch {
  /** Resolves on the message, after `ms`, or when the signal fires, whichever comes first. */
  next(ms: number, signal: { aborted: boolean; once(event: 'abort', listener: () => void): unknown; off(event: 'abort', listener: () => void): unknown }): Promise<void>;
  close(): void;
}

const RELEASE = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('del', KEYS[1]) else return 0 end`;
const REFRESH = `if redis.call('get', KEYS[1]) == ARGV[1] then return redis.call('pexpire', KEYS[1], ARGV[2]) else return 0 end`;

export class RemoteFlights {
  private readonly subscriber: RedisConnection;
  private readonly channel: string;
  private readonly lockPrefix: string;
  private readonly watchers = new Map<string, Set<() => void>>();

  constructor(
    private readonly redis: RedisConnection,
    keyPrefix: string,
    private readonly lockTtlMs: number,
  ) {
    // Outside the entries' prefix, like the tenant secret: no purge touches a lock.
    this.channel = `recall-meta:${keyPrefix}flights`;
    this.lockPrefix = `recall-meta:${keyPrefix}lock:`;
    // A subscribed connection can send nothing else; it queues its SUBSCRIBE until connected and resubscribes after
    // every reconnect on its own.
    this.subscriber = sideConnection(redis, { connectionName: 'recall-flights' });
    this.subscriber.on('message', (_channel: string, key: string) => {
      for (const wake of this.watchers.get(key) ?? []) wake();
    });
    this.subscriber.subscribe(this.channel).catch(() => undefined);
  }

  async acquire(key: string): Promise<LockAttempt> {
    const lockKey = this.lockPrefix + key;
    const token = randomBytes(12).toString('base64');
    try {
      if ((await this.redis.set(lockKey, token, 'PX', this.lockTtlMs, 'NX')) === 'OK') return this.held(key, lockKey, token);
      const ttlMs = await this.redis.pttl(lockKey);
      return { acquired: false, ttlMs: ttlMs > 0 ? ttlMs : this.lockTtlMs };
    } catch {
      return undefined;
    }
  }

  watch(key: string): FlightWatch {
    let fired = false;
    let wake: (() => void) | undefined;
    const onMessage = (): void => {
      fired = true;
      wake?.();
    };
    let set = this.watchers.get(key);
    if (set === undefined) this.watchers.set(key, (set = new Set()));
    set.add(onMessage);
    return {
      next: (ms, signal) => {
        if (fired || signal.aborted) {
          fired = false;
          return Promise.resolve();
        }
        return new Promise<void>((resolve) => {
          const done = (): void => {
            clearTimeout(timer);
            signal.off('abort', done);
            wake = undefined;
            fired = false;
            resolve();
          };
          const timer = setTimeout(done, ms);
          signal.once('abort', done);
          wake = done;
        });
      },
      close: () => {
        set.delete(onMessage);
        if (set.size === 0 && this.watchers.get(key) === set) this.watchers.delete(key);
      },
    };
  }

  async close(): Promise<void> {
    this.subscriber.disconnect();
  }

  private held(key: string, lockKey: string, token: string): LockAttempt {
    // Refreshed while the call lasts: a long generation keeps its lock, a crashed instance stops refreshing.
    const refresh = setInterval(() => {
      this.redis.eval(REFRESH, 1, lockKey, token, this.lockTtlMs).catch(() => undefined);
    }, Math.max(1, Math.floor(this.lockTtlMs / 3)));
    refresh.unref();
    return {
      acquired: true,
      release: async () => {
        clearInterval(refresh);
        try {
          await this.redis.eval(RELEASE, 1, lockKey, token);
          await this.redis.publish(this.channel, key);
        } catch {
          // Waiters then find the lock gone when their wait ends, and take it.
        }
      },
    };
  }
}
