// One-off measurement behind RedisStore's value format: encodes, decodes and round-trips typical completion bodies
// through a real Redis as (a) JSON with a base64 body, (b) a binary header + body, (c) a Redis hash, and prices a
// best-effort hit counter on the hit path. Prints a Markdown table; the chosen numbers are quoted in redis-store.ts.
//
//   npx tsx loadtest/redis-format.ts [--url redis://127.0.0.1:6379] [--rounds 3]
//
// Uses its own key prefix (recall-format-bench:<pid>:) and deletes what it wrote.

import { randomBytes } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';

interface Entry {
  body: Buffer;
  storedAt: number;
  expiresAt: number;
}

interface Format {
  name: string;
  /** Pure CPU cost, no Redis. */
  encode(entry: Entry): Buffer | string | Record<string, Buffer | number>;
  decode(stored: never): Entry;
  write(redis: Redis, key: string, entry: Entry, ttlMs: number): Promise<unknown>;
  read(redis: Redis, key: string): Promise<Entry | undefined>;
  /** A fire-and-forget hit counter that never resurrects an expired key. */
  countHit(redis: Redis, key: string): void;
}

const { values } = parseArgs({ options: { url: { type: 'string' }, rounds: { type: 'string' } } });
const redis = new Redis(values.url ?? 'redis://127.0.0.1:6379', { lazyConnect: true, maxRetriesPerRequest: 1 });
await redis.connect();
const rounds = Number(values.rounds ?? 3);
const prefix = `recall-format-bench:${process.pid}:`;

// The counters only touch a key that still exists, so a hit racing an expiry cannot leave a key without a TTL.
const INCR_BINARY = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('BITFIELD', KEYS[1], 'INCRBY', 'u32', ${17 * 8}, 1) end`;
const INCR_HASH = `if redis.call('EXISTS', KEYS[1]) == 1 then return redis.call('HINCRBY', KEYS[1], 'h', 1) end`;
redis.defineCommand('incrBinaryHit', { numberOfKeys: 1, lua: INCR_BINARY });
redis.defineCommand('incrHashHit', { numberOfKeys: 1, lua: INCR_HASH });
type WithScripts = Redis & { incrBinaryHit(key: string): Promise<unknown>; incrHashHit(key: string): Promise<unknown> };

const json: Format = {
  name: '(a) JSON {b: base64, s, e}',
  encode: (e) => JSON.stringify({ b: e.body.toString('base64'), s: e.storedAt, e: e.expiresAt }),
  decode: (stored: string) => {
    const v = JSON.parse(stored) as { b: string; s: number; e: number };
    return { body: Buffer.from(v.b, 'base64'), storedAt: v.s, expiresAt: v.e };
  },
  write: (r, key, e, ttlMs) => r.set(key, json.encode(e) as string, 'PX', ttlMs),
  read: async (r, key) => {
    const stored = await r.get(key);
    return stored === null ? undefined : json.decode(stored as never);
  },
  countHit: () => {},
};

const HEADER = 17;
const binary: Format = {
  name: '(b) binary [v][storedAt][expiresAt][body]',
  encode: (e) => {
    const out = Buffer.allocUnsafe(HEADER + e.body.length);
    out[0] = 1;
    out.writeDoubleBE(e.storedAt, 1);
    out.writeDoubleBE(e.expiresAt, 9);
    e.body.copy(out, HEADER);
    return out;
  },
  decode: (stored: Buffer) => {
    if (stored[0] !== 1 || stored.length < HEADER) throw new Error('bad entry');
    return { body: stored.subarray(HEADER), storedAt: stored.readDoubleBE(1), expiresAt: stored.readDoubleBE(9) };
  },
  write: (r, key, e, ttlMs) => r.set(key, binary.encode(e) as Buffer, 'PX', ttlMs),
  read: async (r, key) => {
    const stored = await r.getBuffer(key);
    return stored === null ? undefined : binary.decode(stored as never);
  },
  countHit: () => {},
};

const binaryWithHits: Format = {
  ...binary,
  name: '(b+h) binary, 4-byte hit counter via Lua BITFIELD',
  encode: (e) => {
    const out = Buffer.allocUnsafe(HEADER + 4 + e.body.length);
    out[0] = 2;
    out.writeDoubleBE(e.storedAt, 1);
    out.writeDoubleBE(e.expiresAt, 9);
    out.writeUInt32BE(0, HEADER);
    e.body.copy(out, HEADER + 4);
    return out;
  },
  decode: (stored: Buffer) => {
    if (stored[0] !== 2 || stored.length < HEADER + 4) throw new Error('bad entry');
    return { body: stored.subarray(HEADER + 4), storedAt: stored.readDoubleBE(1), expiresAt: stored.readDoubleBE(9) };
  },
  write: (r, key, e, ttlMs) => r.set(key, binaryWithHits.encode(e) as Buffer, 'PX', ttlMs),
  read: async (r, key) => {
    const stored = await r.getBuffer(key);
    if (stored === null) return undefined;
    binaryWithHits.countHit(r, key);
    return binaryWithHits.decode(stored as never);
  },
  countHit: (r, key) => void (r as WithScripts).incrBinaryHit(key).catch(() => {}),
};

const hashFields = (e: Entry): Record<string, Buffer | number> => ({ b: e.body, s: e.storedAt, e: e.expiresAt });
const hash: Format = {
  name: '(c) hash {b, s, e} + PEXPIRE in MULTI',
  encode: hashFields,
  decode: (stored: Record<string, Buffer>) => {
    const { b, s, e } = stored;
    if (b === undefined || s === undefined || e === undefined) throw new Error('bad entry');
    return { body: b, storedAt: Number(s.toString()), expiresAt: Number(e.toString()) };
  },
  write: (r, key, e, ttlMs) => r.multi().hset(key, hashFields(e)).pexpire(key, ttlMs).exec(),
  read: async (r, key) => {
    const stored = await r.hgetallBuffer(key);
    return Object.keys(stored).length === 0 ? undefined : hash.decode(stored as never);
  },
  countHit: () => {},
};

const hashWithHits: Format = {
  ...hash,
  name: '(c+h) hash, HINCRBY h via Lua',
  read: async (r, key) => {
    const stored = await r.hgetallBuffer(key);
    if (Object.keys(stored).length === 0) return undefined;
    hashWithHits.countHit(r, key);
    return hash.decode(stored as never);
  },
  countHit: (r, key) => void (r as WithScripts).incrHashHit(key).catch(() => {}),
};

/** A chat completion JSON body of about `bytes` bytes. */
function completionBody(bytes: number): Buffer {
  const skeleton = {
    id: 'chatcmpl-bench', object: 'chat.completion', created: 1_764_000_000, model: 'gpt-4o-mini-2024-07-18',
    choices: [{ index: 0, message: { role: 'assistant', content: '', refusal: null }, logprobs: null, finish_reason: 'stop' }],
    usage: { prompt_tokens: 42, completion_tokens: 250, total_tokens: 292 }, system_fingerprint: 'fp_bench',
  };
  const filler = randomBytes(bytes).toString('base64').replace(/[+/=]/g, ' ');
  const empty = JSON.stringify(skeleton).length;
  skeleton.choices[0]!.message.content = filler.slice(0, Math.max(0, bytes - empty));
  return Buffer.from(JSON.stringify(skeleton));
}

function usPerOp(iterations: number, run: () => void): number {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) run();
  return ((performance.now() - start) * 1000) / iterations;
}

async function usPerOpAsync(iterations: number, run: (i: number) => Promise<unknown>): Promise<number> {
  const start = performance.now();
  for (let i = 0; i < iterations; i++) await run(i);
  return ((performance.now() - start) * 1000) / iterations;
}

/** Gets per second with `concurrency` requests in flight over one connection, as a busy proxy would issue them. */
async function getsPerSecond(format: Format, keys: string[], total: number, concurrency: number): Promise<number> {
  let next = 0;
  const start = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async () => {
    while (next < total) {
      const key = keys[next++ % keys.length]!;
      await format.read(redis, key);
    }
  }));
  return total / ((performance.now() - start) / 1000);
}

const best = (xs: number[]) => Math.min(...xs);
const worstRate = (xs: number[]) => Math.max(...xs);

interface Row {
  format: string;
  size: string;
  storedBytes: number;
  codecUs: number;
  setUs: number;
  getUs: number;
  getsPerS: number;
}

const rows: Row[] = [];
const formats = [json, binary, hash, binaryWithHits, hashWithHits];
for (const [label, bytes] of [['1 KB', 1024], ['20 KB', 20 * 1024]] as const) {
  const body = completionBody(bytes);
  const entry: Entry = { body, storedAt: Date.now(), expiresAt: Date.now() + 3_600_000 };
  const iterations = bytes > 4096 ? 5_000 : 20_000;
  for (const format of formats) {
    const keys = Array.from({ length: 256 }, (_, i) => `${prefix}${format.name.slice(0, 5)}:${label}:${i}`);
    const codec: number[] = [];
    const sets: number[] = [];
    const gets: number[] = [];
    const rates: number[] = [];
    for (let round = 0; round < rounds; round++) {
      codec.push(usPerOp(iterations, () => {
        const stored = format.encode(entry);
        // Redis hands a hash back as Buffers; give the decoder what it would really see.
        const asRead = typeof stored === 'object' && !Buffer.isBuffer(stored)
          ? Object.fromEntries(Object.entries(stored).map(([k, v]) => [k, Buffer.isBuffer(v) ? v : Buffer.from(String(v))]))
          : stored;
        format.decode(asRead as never);
      }));
      sets.push(await usPerOpAsync(2_000, (i) => format.write(redis, keys[i % keys.length]!, entry, 3_600_000)));
      gets.push(await usPerOpAsync(2_000, async (i) => {
        const got = await format.read(redis, keys[i % keys.length]!);
        if (got === undefined || !got.body.equals(body)) throw new Error(`${format.name} did not round-trip`);
      }));
      rates.push(await getsPerSecond(format, keys, 20_000, 64));
    }
    const usage = Number(await redis.call('MEMORY', 'USAGE', keys[0]!));
    rows.push({
      format: format.name, size: label, storedBytes: usage, codecUs: best(codec), setUs: best(sets), getUs: best(gets),
      getsPerS: worstRate(rates),
    });
    await redis.unlink(...keys);
  }
}

await redis.quit();

const fmt = (n: number, digits = 1) => n.toFixed(digits);
console.log(`Redis value formats, best of ${rounds} rounds (Node ${process.version}); set/get are sequential round trips on loopback.\n`);
console.log('| format | body | Redis MEMORY USAGE B | encode+decode µs | SET µs | GET+decode µs | GETs/s at 64 in flight |');
console.log('| --- | --- | ---: | ---: | ---: | ---: | ---: |');
for (const row of rows) {
  console.log(`| ${row.format} | ${row.size} | ${row.storedBytes} | ${fmt(row.codecUs, 2)} | ${fmt(row.setUs)} | ${fmt(row.getUs)} | ${fmt(row.getsPerS, 0)} |`);
}
