// Shares the semantic index through Redis: every insert is appended to a Redis Stream (vector, partition, exact key,
// message text), and every instance follows the stream from its start, so an instance builds its index from Redis at
// start and an entry stored through one instance becomes a candidate on the others within about a second. A
// follower that loses Redis resumes after the last entry it applied (catch-up); the stream is trimmed to about
// `semantic.max_vectors` entries. Failures fail open: counted, warned about at most once per 10 s. One stream key, so
// on a Cluster the whole feed lives in one slot (XADD and a single-stream XREAD never span slots).
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sideConnection, type RedisConnection } from '../redis-connection.js';
import type { Metrics } from '../../metrics/catalog.js';
import type { InsertSink } from './semantic-tier.js';
import type { VectorIndex } from './vector-index.js';

/** How long one XREAD waits for new entries; also how soon a closing feed stops. */
const BLOCK_MS = 1_000;
const PAGE = 1_000;
const RETRY_MS = 500;
const WARNING_INTERVAL_MS = 10_000;

type StreamReply = [Buffer, [Buffer, Buffer[]][]][] | null;

export class RedisFeed implements InsertSink {
  private readonly key: string;
  private readonly reader: RedisConnection;
  /** Tells this instance's own entries apart: they are in its index already. */
  private readonly instanceId = randomBytes(8).toString('hex');
  private lastId = '0-0';
  private closed = false;
  private following: Promise<void> | undefined;
  private lastWarningAt = 0;

  constructor(
    private readonly redis: RedisConnection,
    keyPrefix: string,
    private readonly index: VectorIndex,
    private readonly maxVectors: number,
    private readonly metrics: Metrics,
    private readonly log: FastifyBaseLogger,
  ) {
    // Beside the other shared metadata, outside the entries' prefix: a purge leaves it (its vectors then find their
    // entries gone and are dropped when looked at).
    this.key = `recall-meta:${keyPrefix}semantic`;
    // Blocking reads need a connection of their own, with a timeout longer than the block.
    this.reader = sideConnection(redis, { connectionName: 'recall-semantic-feed', commandTimeoutMs: BLOCK_MS * 5 });
  }

  /** Starts following the stream from its beginning (the index is built from it); returns at once. */
  start(): void {
    this.following ??= this.follow();
  }

  publish(vector: Float32Array, partition: string, exactKey: string, text: string): void {
    const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
    this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxVectors), '*', 'i', this.instanceId, 'p', partition, 'k', exactKey, 't', text, 'v', bytes)
      .catch((err: unknown) => this.fail(err, 'semantic vector not shared through Redis; other instances will not find it'));
  }

  async close(): Promise<void> {
    this.closed = true;
    this.reader.disconnect();
    // A Cluster that never connected keeps its queued XREAD pending after disconnect (ioredis 6): wait a bounded time.
    let timer: NodeJS.Timeout | undefined;
    const bound = new Promise<void>((resolve) => { timer = setTimeout(resolve, BLOCK_MS * 2); });
    await Promise.race([this.following?.catch(() => undefined), bound]);
    clearTimeout(timer);
  }

  private async follow(): Promise<void> {
    while (!this.closed) {
      try {
        const reply = (await this.reader.xreadBuffer('COUNT', PAGE, 'BLOCK', BLOCK_MS, 'STREAMS', this.key, this.lastId)) as StreamReply;
        for (const [, entries] of reply ?? []) {
          for (const [id, fields] of entries) {
            this.apply(fields);
            this.lastId = id.toString();
          }
        }
      } catch (err) {
        if (this.closed) return;
        this.fail(err, 'following the shared semantic index in Redis failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  private apply(fields: Buffer[]): void {
    const entry = new Map<string, Buffer>();
    for (let i = 0; i + 1 < fields.length; i += 2) entry.set(fields[i]!.toString(), fields[i + 1]!);
    const [instance, partition, exactKey, text, bytes] = ['i', 'p', 'k', 't', 'v'].map((name) => entry.get(name));
    if (instance === undefined || partition === undefined || exactKey === undefined || text === undefined || bytes === undefined) return;
    if (instance.toString() === this.instanceId || bytes.length % 4 !== 0) return;
    // Copied: the Buffer may share a pool and need not be 4-byte aligned.
    const vector = new Float32Array(bytes.length / 4);
    Buffer.from(vector.buffer).set(bytes);
    try {
      this.index.add(vector, { partition: partition.toString(), exactKey: exactKey.toString(), text: text.toString() });
    } catch (err) {
      this.fail(err, 'a shared semantic vector could not be indexed');
    }
  }

  private fail(err: unknown, message: string): void {
    this.metrics.semanticError('feed');
    const now = Date.now();
    if (now - this.lastWarningAt < WARNING_INTERVAL_MS) return;
    this.lastWarningAt = now;
    this.log.warn({ err }, message);
  }
}
