// The one place that opens Recall's Redis connection from the config: a standalone server (`redis.url`), a Redis
// Cluster (`redis.cluster`) or the master a set of sentinels names (`redis.sentinels`), always failing fast so that
// callers fail open. Every feature that shares Redis (exact tier, semantic feed, coalescing, rate limits) uses it.
import { Cluster, Command, Redis, type ClusterOptions, type RedisOptions } from 'ioredis';
import type { HostPort, RecallConfig } from '../config/schema.js';

/** What every shared feature talks to; both kinds take the same single-key commands, Lua and pub/sub. */
export type RedisConnection = Redis | Cluster;

export type RedisTarget =
  | { kind: 'standalone'; url: string }
  | { kind: 'cluster'; seeds: readonly HostPort[]; password: string | undefined }
  | { kind: 'sentinel'; sentinels: readonly HostPort[]; name: string; password: string | undefined };

export interface ConnectionOptions {
  /** A command without a reply by then fails (and the caller answers from the upstream). */
  commandTimeoutMs: number;
  connectTimeoutMs: number;
  /** Longest pause between reconnect attempts. */
  reconnectMaxDelayMs: number;
}

/** For a second connection (blocking reads, pub/sub): it may queue commands while it reconnects, unlike the first. */
export interface SideConnectionOptions {
  connectionName: string;
  /** Undefined: no timeout (a subscriber). */
  commandTimeoutMs?: number;
}

/** Which Redis the config names, or undefined for none (the in-memory store). `loadConfig` allows only one. */
export function redisTarget(redis: RecallConfig['redis']): RedisTarget | undefined {
  if (redis.cluster !== undefined) return { kind: 'cluster', seeds: redis.cluster, password: redis.password };
  if (redis.sentinels !== undefined && redis.sentinelName !== undefined) {
    return { kind: 'sentinel', sentinels: redis.sentinels, name: redis.sentinelName, password: redis.password };
  }
  if (redis.url !== undefined) return { kind: 'standalone', url: redis.url };
  return undefined;
}

/**
 * ioredis fails a command whose timer fires before its reply has been read. Timers run before the event loop's poll
 * for I/O, so on an instance whose event loop is late (a saturated one: one turn of the loop took longer than
 * `redis.command_timeout_ms`), a reply that had arrived in time was failed as a timeout and the request went upstream,
 * adding an upstream call just when the instance had least room for it: in `npm run bench` runs, up to 0.1 % of one
 * repeated request's hits and 0.2 to 3 % of hits on entries picked at random among 1k to 1M, at 50 connections. The verdict now waits for that poll (setImmediate runs after it): a reply already received settles
 * the command first; a Redis that has not answered still fails the command, one loop turn later. For every command of
 * every connection (a Cluster makes its node connections itself), so it is set once, on ioredis' Command.
 */
function timeOutAfterPendingReplies(): void {
  // The members of ioredis' Command (6.x) that its own setTimeout uses.
  interface TimedCommand { _commandTimeoutTimer?: NodeJS.Timeout; isSettled: boolean; reject(err: Error): void }
  (Command.prototype as unknown as { setTimeout(ms: number): void }).setTimeout = function setTimeout(this: TimedCommand, ms: number): void {
    if (this._commandTimeoutTimer !== undefined) return;
    this._commandTimeoutTimer = globalThis.setTimeout(() => {
      setImmediate(() => {
        if (!this.isSettled) this.reject(new Error('Command timed out'));
      });
    }, ms);
  };
}
timeOutAfterPendingReplies();

export function openRedisConnection(target: RedisTarget, options: ConnectionOptions): RedisConnection {
  const retry = (attempt: number) => Math.min(50 * 2 ** (attempt - 1), options.reconnectMaxDelayMs);
  const failFast: RedisOptions = {
    connectionName: 'recall',
    commandTimeout: options.commandTimeoutMs,
    connectTimeout: options.connectTimeoutMs,
    // While disconnected a command fails at once (and the request goes upstream) instead of waiting in a queue.
    enableOfflineQueue: false,
    // A command caught by a dropped connection is sent once more after reconnecting, still within commandTimeout.
    maxRetriesPerRequest: 1,
    retryStrategy: retry,
  };
  switch (target.kind) {
    // One server: commands issued in the same tick (concurrent hits' GETs) leave in one write, one syscall instead
    // of one each. Not on a Cluster (see clusterOptions).
    case 'standalone':
      return new Redis(target.url, { ...failFast, enableAutoPipelining: true });
    case 'sentinel':
      return new Redis({ ...failFast, enableAutoPipelining: true, sentinels: [...target.sentinels], name: target.name, password: target.password, sentinelRetryStrategy: retry });
    case 'cluster':
      return new Cluster([...target.seeds], clusterOptions(target, failFast, retry));
  }
}

function clusterOptions(target: Extract<RedisTarget, { kind: 'cluster' }>, failFast: RedisOptions, retry: (attempt: number) => number): ClusterOptions {
  // Per node: the timeouts. Node connections never reconnect on their own; the Cluster re-reads the slot map instead.
  const { enableOfflineQueue: _queue, retryStrategy: _retry, ...perNode } = failFast;
  return {
    redisOptions: { ...perNode, password: target.password },
    // Before the slot map is known, and while every node is gone, commands fail at once, as on a standalone server.
    enableOfflineQueue: false,
    clusterRetryStrategy: retry,
    // After a failover the replica that took over is found by re-reading the slot map: on a closed connection
    // (retryDelayOnFailover), and every few seconds in case no command noticed.
    retryDelayOnFailover: 100,
    slotsRefreshInterval: 5_000,
    // Not enableAutoPipelining: with it, lookups on a dead master waited out the whole failover (about 2.6 s in
    // test/integration/cache/redis-cluster-failover.test.ts) instead of failing open after commandTimeout.
  };
}

/**
 * A second connection to the same Redis, for what would block the first: a blocking XREAD, a subscription. Its
 * failures reach its owner as rejected commands; connection errors are not reported twice.
 */
export function sideConnection(connection: RedisConnection, options: SideConnectionOptions): RedisConnection {
  const perNode: RedisOptions = { connectionName: options.connectionName, commandTimeout: options.commandTimeoutMs, maxRetriesPerRequest: null };
  const side = connection instanceof Cluster
    ? connection.duplicate([], { enableOfflineQueue: true, redisOptions: perNode })
    : connection.duplicate({ ...perNode, enableOfflineQueue: true });
  side.on('error', () => undefined);
  return side;
}

/** The servers that hold keys: every master of a Cluster (a SCAN covers one node only), or the one server. */
export function keyHolders(connection: RedisConnection): Redis[] {
  return connection instanceof Cluster ? connection.nodes('master') : [connection];
}

/**
 * The keys matching `pattern`, a SCAN batch of about `count` at a time (never KEYS, which blocks Redis for the whole
 * keyspace), on every server that holds keys, with the server that holds them. Buffers, so that a foreign key that is
 * not valid UTF-8 keeps its exact bytes.
 */
export async function* scanKeys(connection: RedisConnection, pattern: string, count: number): AsyncGenerator<{ server: Redis; keys: Buffer[] }> {
  for (const server of keyHolders(connection)) {
    let cursor = '0';
    do {
      const [next, keys] = await server.scanBuffer(cursor, 'MATCH', pattern, 'COUNT', count);
      cursor = next.toString();
      if (keys.length > 0) yield { server, keys };
    } while (cursor !== '0');
  }
}

/** True for a Cluster: there, a multi-key command must keep its keys in one slot. */
export function isCluster(connection: RedisConnection): connection is Cluster {
  return connection instanceof Cluster;
}
