// The behaviour every CacheStore owes the exact tier, written once and run against each store (memory, Redis).
import { randomBytes } from 'node:crypto';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import type { CacheEntry, CacheStore } from '../../../src/cache/store.js';

export interface StoreUnderTest {
  store: CacheStore;
  /** The store's clock: entry times in the tests are taken from it. */
  now(): number;
  /**
   * Lets `ms` pass as the store sees it: a fake clock just moves, a store that expires on a real clock (Redis) is
   * really waited for. Tests keep lifetimes short (≤ 200 ms) so that the real wait stays cheap.
   */
  advance(ms: number): Promise<void>;
  /** Whether `get` counts hits in `entry.hits`; a store that does not leaves it undefined. */
  countsHits: boolean;
  /**
   * A value written by someone else into the same backend (another application, another store's prefix), where the
   * backend is shared at all; a store must never delete it.
   */
  foreign?: { write(): Promise<void>; exists(): Promise<boolean> };
  cleanup(): Promise<void>;
}

const MINUTE = 60_000;

/** What a store is built with for a test: how long it keeps expired entries for stale-if-error (default 0). */
export interface StoreOptions {
  keepExpiredMs?: number;
}

export function describeStoreContract(name: string, makeStore: (options?: StoreOptions) => Promise<StoreUnderTest>): void {
  describe(`${name} honours the CacheStore contract`, () => {
    let subject: StoreUnderTest;
    let store: CacheStore;
    const entry = (body: string | Buffer, ttlMs = MINUTE): CacheEntry => {
      const storedAt = subject.now();
      return { body: Buffer.isBuffer(body) ? body : Buffer.from(body), storedAt, expiresAt: storedAt + ttlMs };
    };
    const bodyOf = async (key: string) => (await store.get(key))?.body.toString();

    beforeEach(async () => {
      subject = await makeStore();
      store = subject.store;
    });
    afterEach(async () => {
      await subject.cleanup();
    });

    it('returns undefined for a key never set', async () => {
      expect(await store.get('never-set')).toBeUndefined();
    });

    it('returns the body and both times exactly as set', async () => {
      const stored = { body: Buffer.from('{"id":"chatcmpl-1"}'), storedAt: subject.now() + 0.5, expiresAt: subject.now() + MINUTE };
      await store.set('k', stored);
      const got = await store.get('k');
      expect(got?.body.equals(stored.body)).toBe(true);
      expect(got?.storedAt).toBe(stored.storedAt);
      expect(got?.expiresAt).toBe(stored.expiresAt);
    });

    it('replaces an entry on set', async () => {
      await store.set('k', entry('one'));
      await store.set('k', entry('two'));
      expect(await bodyOf('k')).toBe('two');
    });

    it('delete says whether the entry existed', async () => {
      await store.set('k', entry('v'));
      expect(await store.delete('k')).toBe(true);
      expect(await store.get('k')).toBeUndefined();
      expect(await store.delete('k')).toBe(false);
    });

    it('stops returning an entry once it expires', async () => {
      await store.set('short', entry('soon gone', 150));
      await store.set('long', entry('stays', MINUTE));
      expect(await bodyOf('short')).toBe('soon gone');
      await subject.advance(200);
      expect(await store.get('short')).toBeUndefined();
      expect(await bodyOf('long')).toBe('stays');
    });

    it('getStale returns a fresh entry too, and nothing once it expired when expired entries are not kept', async () => {
      await store.set('k', entry('v', 150));
      expect((await store.getStale('k'))?.body.toString()).toBe('v');
      await subject.advance(200);
      expect(await store.getStale('k')).toBeUndefined();
    });

    it('keeps an expired entry for keepExpiredMs: getStale returns it, get never does', async () => {
      const keeping = await makeStore({ keepExpiredMs: 300 });
      try {
        const storedAt = keeping.now();
        await keeping.store.set('k', { body: Buffer.from('old answer'), storedAt, expiresAt: storedAt + 100 });
        await keeping.store.set('fresh', { body: Buffer.from('live'), storedAt, expiresAt: storedAt + MINUTE });
        await keeping.advance(150);
        expect(await keeping.store.get('k')).toBeUndefined();
        const stale = await keeping.store.getStale('k');
        expect(stale?.body.toString()).toBe('old answer');
        expect(stale?.expiresAt).toBe(storedAt + 100);
        // Still not served as fresh after a stale read.
        expect(await keeping.store.get('k')).toBeUndefined();
        expect((await keeping.store.get('fresh'))?.body.toString()).toBe('live');
        await keeping.advance(300);
        expect(await keeping.store.getStale('k')).toBeUndefined();
        expect((await keeping.store.getStale('fresh'))?.body.toString()).toBe('live');
      } finally {
        await keeping.cleanup();
      }
    });

    it('an entry set already expired but within keepExpiredMs is kept for getStale only', async () => {
      const keeping = await makeStore({ keepExpiredMs: MINUTE });
      try {
        const now = keeping.now();
        await keeping.store.set('k', { body: Buffer.from('late'), storedAt: now - 2_000, expiresAt: now - 1_000 });
        expect(await keeping.store.get('k')).toBeUndefined();
        expect((await keeping.store.getStale('k'))?.body.toString()).toBe('late');
      } finally {
        await keeping.cleanup();
      }
    });

    it('treats setting an already expired entry as removing the older one', async () => {
      await store.set('k', entry('live'));
      await store.set('k', entry('dead', -1));
      expect(await store.get('k')).toBeUndefined();
    });

    it('deletePrefix removes exactly the keys that start with the prefix and counts them', async () => {
      for (const key of ['ns-a:1', 'ns-a:2', 'ns-a:3', 'ns-ab:1', 'ns-b:1', 'x-ns-a:1']) await store.set(key, entry(key));
      expect(await store.deletePrefix('ns-a:')).toBe(3);
      expect(await store.get('ns-a:1')).toBeUndefined();
      expect(await bodyOf('ns-ab:1')).toBe('ns-ab:1');
      expect(await bodyOf('ns-b:1')).toBe('ns-b:1');
      expect(await bodyOf('x-ns-a:1')).toBe('x-ns-a:1');
      expect(await store.deletePrefix('ns-a:')).toBe(0);
    });

    it('deletePrefix takes glob characters in a namespace literally', async () => {
      const keys = ['ns*:1', 'ns?:1', 'ns[x]:1', 'ns\\:1', 'nsx:1', 'nsxx:1'];
      for (const key of keys) await store.set(key, entry(key));
      expect(await store.deletePrefix('ns*')).toBe(1);
      expect(await store.deletePrefix('ns?')).toBe(1);
      expect(await store.deletePrefix('ns[x]')).toBe(1);
      expect(await store.deletePrefix('ns\\')).toBe(1);
      expect(await bodyOf('nsx:1')).toBe('nsx:1');
      expect(await bodyOf('nsxx:1')).toBe('nsxx:1');
    });

    it('deletePrefix goes through more keys than one batch holds', async () => {
      await Promise.all(Array.from({ length: 1_200 }, (_, i) => store.set(`bulk:${i}`, entry('x'))));
      await store.set('keep:1', entry('kept'));
      expect(await store.deletePrefix('bulk:')).toBe(1_200);
      expect(await bodyOf('keep:1')).toBe('kept');
    });

    it('clear removes every entry of the store', async () => {
      await store.set('a:1', entry('1'));
      await store.set('b:1', entry('2'));
      await store.clear();
      expect(await store.get('a:1')).toBeUndefined();
      expect(await store.get('b:1')).toBeUndefined();
    });

    it('keeps bodies byte for byte: every byte value and invalid UTF-8', async () => {
      const everyByte = Buffer.from(Array.from({ length: 256 }, (_, i) => i));
      const invalidUtf8 = Buffer.from([0xff, 0xfe, 0x80, 0xe2, 0x82, 0x00, 0xc3, 0x28, 0xed, 0xa0, 0x80]);
      const body = Buffer.concat([everyByte, invalidUtf8, Buffer.from('{"ok":true}\r\n')]);
      await store.set('binary', entry(body));
      expect((await store.get('binary'))?.body.equals(body)).toBe(true);
      await store.set('empty', entry(Buffer.alloc(0)));
      expect((await store.get('empty'))?.body.length).toBe(0);
    });

    it('keeps a 1 MB body intact', async () => {
      const body = randomBytes(1024 * 1024);
      await store.set('large', entry(body));
      expect((await store.get('large'))?.body.equals(body)).toBe(true);
    });

    it('counts hits in entry.hits where it counts them, and leaves them undefined otherwise', async () => {
      await store.set('k', entry('v'));
      // Read each count at once: a store may hand back the same entry object every time.
      const first = (await store.get('k'))?.hits;
      const second = (await store.get('k'))?.hits;
      if (subject.countsHits) {
        expect(first).toBe(1);
        expect(second).toBe(2);
      } else {
        expect(second).toBeUndefined();
      }
    });

    it('never touches data it does not own', async (context) => {
      if (subject.foreign === undefined) context.skip();
      const foreign = subject.foreign!;
      await foreign.write();
      await store.set('k', entry('v'));
      await store.deletePrefix('');
      await store.clear();
      expect(await foreign.exists()).toBe(true);
    });
  });
}
