// Shares the semantic index through Redis: every insert is appended to a Redis Stream (vector, partition, exact key,
// message text, expiry), and so is every operator's purge; every instance follows the stream from its start, so an
// instance builds its index from Redis at start and an entry stored (or purged) through one instance is a candidate
// (or gone) on the others within about a second. A follower that loses Redis resumes after the last entry it applied
// (catch-up). The stream stays bounded: about `semantic.max_vectors` records (MAXLEN), records of expired entries are
// trimmed from its head (MINID) and skipped when replayed, and a purge of all empties it. Failures fail open: counted,
// warned about at most once per 10 s. One stream key, so on a Cluster
// the whole feed lives in one slot (XADD and a single-stream XREAD never span slots).
import { ThrottledWarning } from '../../log/throttled-warning.js';
import { randomBytes } from 'node:crypto';
import type { FastifyBaseLogger } from 'fastify';
import { sideConnection, type RedisConnection } from '../redis-connection.js';
import type { Metrics } from '../../metrics/catalog.js';
import type { PurgeScope } from '../store.js';
import type { SharedVectors } from './semantic-tier.js';
import type { VectorIndex, VectorMeta } from './vector-index.js';

/** How long one XREAD waits for new entries; also how soon a closing feed stops. */
const BLOCK_MS = 1_000;
const PAGE = 1_000;
const RETRY_MS = 500;

type StreamReply = [Buffer, [Buffer, Buffer[]][]][] | null;

/** A purge as one stream field: `all`, `key:<key>` or `namespace:<name>`. */
function purgeField(scope: PurgeScope): string {
  if ('key' in scope) return `key:${scope.key}`;
  if ('namespace' in scope) return `namespace:${scope.namespace}`;
  return 'all';
}

function purgeScope(field: string): PurgeScope | undefined {
  if (field === 'all') return { all: true };
  if (field.startsWith('key:')) return { key: field.slice(4) };
  if (field.startsWith('namespace:')) return { namespace: field.slice(10) };
  return undefined;
}

/** The smallest stream ID after `id` (`ms-seq`): XTRIM MINID to it drops `id` and everything before. */
function nextId(id: string): string {
  const [ms, seq] = id.split('-');
  return `${ms}-${BigInt(seq ?? '0') + 1n}`;
}

export class RedisFeed implements SharedVectors {
  private readonly key: string;
  private readonly reader: RedisConnection;
  /** Tells this instance's own entries apart: they are in its index already. */
  private readonly instanceId = randomBytes(8).toString('hex');
  private lastId = '0-0';
  /**
   * Every record read, in stream order, with the time it stops mattering (an insert: its entry's expiry; a purge:
   * at once, as nothing before it is left when it reaches the head). The dead head is what trim() drops.
   */
  private readonly seenIds: string[] = [];
  private readonly seenUntil: number[] = [];
  private seenHead = 0;
  private closed = false;
  private following: Promise<void> | undefined;
  private readonly warnings: ThrottledWarning;

  constructor(
    private readonly redis: RedisConnection,
    keyPrefix: string,
    private readonly index: VectorIndex,
    private readonly maxVectors: number,
    private readonly metrics: Metrics,
    log: FastifyBaseLogger,
  ) {
    this.warnings = new ThrottledWarning(log);
    // Beside the other shared metadata, outside the entries' prefix: a purge of entries does not delete it, it
    // records the purge in it.
    this.key = `recall-meta:${keyPrefix}semantic`;
    // Blocking reads need a connection of their own, with a timeout longer than the block.
    this.reader = sideConnection(redis, { connectionName: 'recall-semantic-feed', commandTimeoutMs: BLOCK_MS * 5 });
  }

  /** Starts following the stream from its beginning (the index is built from it); returns at once. */
  start(): void {
    this.following ??= this.follow();
  }

  publish(vector: Float32Array, meta: VectorMeta): void {
    const bytes = Buffer.from(vector.buffer, vector.byteOffset, vector.byteLength);
    this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxVectors), '*', 'i', this.instanceId, 'p', meta.partition, 'k', meta.exactKey,
      't', meta.text, 'e', String(meta.expiresAt), 'v', bytes)
      .catch((err: unknown) => this.fail(err, 'semantic vector not shared through Redis; other instances will not find it'));
  }

  /**
   * Records a purge for the other instances. A purge of all first empties the stream (XTRIM MAXLEN 0 keeps the
   * stream's last ID, so the purge record still sorts after everything a follower has read): an instance started
   * later loads nothing that was purged.
   */
  async publishPurge(scope: PurgeScope): Promise<void> {
    const record = ['*', 'i', this.instanceId, 'x', purgeField(scope)] as const;
    if (!('all' in scope)) {
      await this.redis.xadd(this.key, 'MAXLEN', '~', String(this.maxVectors), ...record);
      return;
    }
    const replies = await this.redis.multi().xtrim(this.key, 'MAXLEN', 0).xadd(this.key, ...record).exec();
    const failed = replies?.find(([err]) => err !== null)?.[0];
    if (replies === null || failed) throw failed ?? new Error('purge of the shared semantic index was not applied');
  }

  /** Trims the stream's head of records that no instance needs: inserts of expired entries, and purges behind them. */
  trim(now: number): void {
    let last: string | undefined;
    while (this.seenHead < this.seenIds.length && this.seenUntil[this.seenHead]! <= now) last = this.seenIds[this.seenHead++];
    if (last === undefined) return;
    const minId = this.seenHead < this.seenIds.length ? this.seenIds[this.seenHead]! : nextId(last);
    this.compactSeen();
    this.redis.xtrim(this.key, 'MINID', minId)
      .catch((err: unknown) => this.fail(err, 'trimming the shared semantic index in Redis failed; retried at the next sweep'));
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
        for (const [, records] of reply ?? []) this.applyPage(records);
      } catch (err) {
        if (this.closed) return;
        this.fail(err, 'following the shared semantic index in Redis failed; retrying');
        await new Promise((resolve) => setTimeout(resolve, RETRY_MS));
      }
    }
  }

  /**
   * Applies a page of records in order: inserts of other instances' live entries go into the index in one batch, up
   * to each purge, which applies where it stands. Notes every record for trim().
   */
  private applyPage(records: [Buffer, Buffer[]][]): void {
    let inserts: { vector: Float32Array; meta: VectorMeta }[] = [];
    const flush = () => {
      try {
        if (inserts.length > 0) this.index.addMany(inserts);
      } catch (err) {
        this.fail(err, 'shared semantic vectors could not be indexed');
      }
      inserts = [];
    };
    const now = Date.now();
    for (const [id, fields] of records) {
      this.lastId = id.toString();
      const record = new Map<string, Buffer>();
      for (let i = 0; i + 1 < fields.length; i += 2) record.set(fields[i]!.toString(), fields[i + 1]!);
      const own = record.get('i')?.toString() === this.instanceId;
      const purge = record.get('x');
      if (purge !== undefined) {
        this.seen(this.lastId, 0);
        const scope = purgeScope(purge.toString());
        if (scope === undefined || own) continue;
        flush();
        this.index.purge(scope);
        continue;
      }
      const [partition, exactKey, text, bytes] = ['p', 'k', 't', 'v'].map((name) => record.get(name));
      // Records written before vectors carried an expiry count as live until their entry is found gone.
      const expiresAt = record.has('e') ? Number(record.get('e')!.toString()) : Infinity;
      this.seen(this.lastId, expiresAt);
      // Own records are in the index already; expired ones are never loaded (a later instance holds only live vectors).
      if (own || !(expiresAt > now) || partition === undefined || exactKey === undefined || text === undefined || bytes === undefined || bytes.length % 4 !== 0) continue;
      // Copied: the Buffer may share a pool and need not be 4-byte aligned.
      const vector = new Float32Array(bytes.length / 4);
      Buffer.from(vector.buffer).set(bytes);
      inserts.push({ vector, meta: { partition: partition.toString(), exactKey: exactKey.toString(), text: text.toString(), expiresAt } });
    }
    flush();
  }

  private seen(id: string, until: number): void {
    this.seenIds.push(id);
    this.seenUntil.push(until);
    // Beyond maxVectors records the head is gone from Redis (MAXLEN) even if it never expires (records without an
    // expiry, a long X-Recall-TTL): forget it, or a head that never expires keeps every later record in memory.
    if (this.seenIds.length - this.seenHead > this.maxVectors) this.seenHead++;
    this.compactSeen();
  }

  /** Drops the forgotten head once it is most of the lists; amortised, so each record is moved a bounded number of times. */
  private compactSeen(): void {
    if (this.seenHead > 1024 && this.seenHead * 2 > this.seenIds.length) {
      this.seenIds.splice(0, this.seenHead);
      this.seenUntil.splice(0, this.seenHead);
      this.seenHead = 0;
    }
  }

  private fail(err: unknown, message: string): void {
    this.metrics.semanticError('feed');
    this.warnings.warn({ err }, message);
  }
}
