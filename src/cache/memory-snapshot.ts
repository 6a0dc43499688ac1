// Keeps the in-memory store across restarts of a single instance: saved atomically to `persist_path` at an interval
// and on shutdown, loaded at start with expired entries dropped. The file holds cached answers and the tenant HMAC
// secret, so it is written readable by its owner only.
import { randomBytes } from 'node:crypto';
import { open, rename, unlink, type FileHandle } from 'node:fs/promises';
import type { FastifyBaseLogger } from 'fastify';
import type { MemoryStore } from './memory-store.js';

const FORMAT = 'recall-memory-snapshot-v1';

interface SnapshotHeader {
  format: typeof FORMAT;
  savedAt: number;
  /** The HMAC secret the entries' partitions were derived with; without it they could never be found again. */
  tenantSecret: string;
}

interface SnapshotLine {
  k: string;
  s: number;
  e: number;
  h: number;
  b: string;
}

export class MemorySnapshot {
  private timer: NodeJS.Timeout | undefined;
  private saving: Promise<void> | undefined;

  constructor(
    private readonly store: MemoryStore,
    private readonly path: string,
    private readonly log: FastifyBaseLogger,
    private readonly now: () => number = Date.now,
  ) {}

  /**
   * Loads the file into the store, line by line (a snapshot of a million entries is larger than the longest string V8
   * can hold); returns the tenant secret it was saved with, if any. A bad file is reported, not fatal.
   */
  async load(): Promise<string | undefined> {
    let file: FileHandle;
    try {
      file = await open(this.path, 'r');
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') this.log.warn({ err, path: this.path }, 'cache snapshot cannot be read; starting empty');
      return undefined;
    }
    const now = this.now();
    let header: SnapshotHeader | undefined;
    let loaded = 0;
    let expired = 0;
    try {
      for await (const line of file.readLines({ encoding: 'utf8' })) {
        if (header === undefined) {
          try {
            header = JSON.parse(line) as SnapshotHeader;
            if (header.format !== FORMAT || typeof header.tenantSecret !== 'string') throw new Error(`unknown format ${String(header.format)}`);
          } catch (err) {
            this.log.warn({ err, path: this.path }, 'cache snapshot has an unknown format; starting empty');
            return undefined;
          }
          continue;
        }
        if (line === '') continue;
        try {
          const entry = JSON.parse(line) as SnapshotLine;
          if (entry.e <= now) {
            expired++;
            continue;
          }
          await this.store.set(entry.k, { body: Buffer.from(entry.b, 'base64'), storedAt: entry.s, expiresAt: entry.e, hits: entry.h });
          loaded++;
        } catch {
          // A torn line cannot happen with the atomic rename, but a hand-edited file can hold one: skip it.
        }
      }
    } catch (err) {
      this.log.warn({ err, path: this.path, loaded }, 'cache snapshot could not be read to the end; keeping what was loaded');
    } finally {
      await file.close().catch(() => undefined);
    }
    if (header === undefined) {
      this.log.warn({ path: this.path }, 'cache snapshot has an unknown format; starting empty');
      return undefined;
    }
    this.log.info({ path: this.path, loaded, expired }, 'cache snapshot loaded');
    return header.tenantSecret;
  }

  /** Saves every `intervalMs` until stopped. */
  start(intervalMs: number, tenantSecret: string): void {
    this.timer = setInterval(() => void this.save(tenantSecret), intervalMs);
    this.timer.unref();
  }

  async stop(tenantSecret: string): Promise<void> {
    clearInterval(this.timer);
    await this.saving;
    await this.save(tenantSecret);
  }

  /** Writes a temporary file beside the target and renames it over: readers never see half a snapshot. */
  save(tenantSecret: string): Promise<void> {
    this.saving ??= this.write(tenantSecret).finally(() => {
      this.saving = undefined;
    });
    return this.saving;
  }

  private async write(tenantSecret: string): Promise<void> {
    const temporary = `${this.path}.${randomBytes(4).toString('hex')}.tmp`;
    try {
      const file = await open(temporary, 'w', 0o600);
      try {
        const header: SnapshotHeader = { format: FORMAT, savedAt: this.now(), tenantSecret };
        let batch = `${JSON.stringify(header)}\n`;
        for (const [k, entry] of this.store.live()) {
          const line: SnapshotLine = { k, s: entry.storedAt, e: entry.expiresAt, h: entry.hits ?? 0, b: entry.body.toString('base64') };
          batch += `${JSON.stringify(line)}\n`;
          if (batch.length > 1 << 20) {
            await file.write(batch);
            batch = '';
          }
        }
        await file.write(batch);
        await file.sync();
      } finally {
        await file.close();
      }
      await rename(temporary, this.path);
    } catch (err) {
      this.log.warn({ err, path: this.path }, 'cache snapshot could not be saved');
      await unlink(temporary).catch(() => undefined);
    }
  }
}
