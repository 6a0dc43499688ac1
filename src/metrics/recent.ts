// The figures behind /recall/stats over the last minute, the last 15 minutes and since start, in bounded memory: a
// ring of 90 ten-second slots plus one slot that is never reset. Latencies go into fixed log-spaced buckets (each
// 10 % wider than the one before, so a percentile is exact to about ±5 %), never into a list of samples.

const SLOT_MS = 10_000;
const SLOTS = 90;
const BUCKET_MIN_MS = 0.05;
const BUCKET_RATIO = 1.1;
/** Buckets from 0.05 ms to past 10 minutes; anything slower lands in the last one. */
const BUCKETS = Math.ceil(Math.log(600_000 / BUCKET_MIN_MS) / Math.log(BUCKET_RATIO)) + 1;
const LOG_RATIO = Math.log(BUCKET_RATIO);

/** Outcomes answered from a cache entry; with the other cacheable outcomes (MISS, COALESCED) they make the hit rate. */
export const SERVED_FROM_CACHE: ReadonlySet<string> = new Set(['HIT', 'SEMANTIC', 'STALE']);
const CACHEABLE: ReadonlySet<string> = new Set([...SERVED_FROM_CACHE, 'MISS', 'COALESCED']);

/** The named windows /recall/stats reports, in slots (undefined: since start). */
export const WINDOWS = { '1m': 6, '15m': SLOTS, since_start: undefined } as const;
export type WindowName = keyof typeof WINDOWS;

export interface Percentiles {
  count: number;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
}

export interface WindowFigures {
  seconds: number;
  requests: Record<string, number>;
  /** Served from a cache (HIT, SEMANTIC, STALE) over those plus MISS and COALESCED; null with no such request. */
  hit_rate: number | null;
  tiers: Record<string, { lookups: number; hits: number; hit_rate: number | null }>;
  latency: Record<string, Percentiles>;
  saved: { prompt_tokens: number; completion_tokens: number; cost_usd: number };
  upstream_errors: { total: number; by_code: Record<string, number> };
}

export interface TimelinePoint {
  /** Start of the 10-second slot, epoch ms. */
  t: number;
  requests: number;
  /** Requests by cache outcome in this slot. */
  outcomes: Record<string, number>;
  hit_rate: number | null;
  p50_ms: number | null;
  p95_ms: number | null;
  p99_ms: number | null;
  cost_usd: number;
}

class Slot {
  requests = new Map<string, number>();
  latency = new Map<string, Uint32Array>();
  lookups = new Map<string, { total: number; hits: number }>();
  promptTokens = 0;
  completionTokens = 0;
  costUsd = 0;
  upstreamErrors = new Map<string, number>();

  constructor(public index: number) {}

  reset(index: number): void {
    this.index = index;
    this.requests.clear();
    for (const buckets of this.latency.values()) buckets.fill(0);
    this.lookups.clear();
    this.promptTokens = 0;
    this.completionTokens = 0;
    this.costUsd = 0;
    this.upstreamErrors.clear();
  }
}

export class RecentStats {
  private readonly ring: Slot[] = Array.from({ length: SLOTS }, () => new Slot(-1));
  private readonly total = new Slot(0);
  private readonly startedAt: number;

  constructor(private readonly now: () => number = Date.now) {
    this.startedAt = now();
  }

  // Each figure goes into the current slot and the since-start slot; no per-call allocation on the hit path.
  request(outcome: string, durationMs: number): void {
    const bucket = bucketOf(durationMs);
    addRequest(this.current(), outcome, bucket);
    addRequest(this.total, outcome, bucket);
  }

  lookup(tier: string, hit: boolean): void {
    addLookup(this.current(), tier, hit);
    addLookup(this.total, tier, hit);
  }

  saved(promptTokens: number, completionTokens: number, usd: number): void {
    addSaved(this.current(), promptTokens, completionTokens, usd);
    addSaved(this.total, promptTokens, completionTokens, usd);
  }

  upstreamError(code: string): void {
    const slot = this.current();
    slot.upstreamErrors.set(code, (slot.upstreamErrors.get(code) ?? 0) + 1);
    this.total.upstreamErrors.set(code, (this.total.upstreamErrors.get(code) ?? 0) + 1);
  }

  window(name: WindowName): WindowFigures {
    const span = WINDOWS[name];
    const slots = span === undefined ? [this.total] : this.recent(span);
    const seconds = span === undefined ? Math.round((this.now() - this.startedAt) / 1000) : (span * SLOT_MS) / 1000;
    const requests = sumMaps(slots.map((s) => s.requests));
    const tiers: WindowFigures['tiers'] = {};
    for (const slot of slots) {
      for (const [tier, figures] of slot.lookups) {
        const sum = (tiers[tier] ??= { lookups: 0, hits: 0, hit_rate: null });
        sum.lookups += figures.total;
        sum.hits += figures.hits;
      }
    }
    for (const sum of Object.values(tiers)) sum.hit_rate = sum.lookups === 0 ? null : sum.hits / sum.lookups;
    const latency: Record<string, Percentiles> = {};
    const all = new Uint32Array(BUCKETS);
    for (const outcome of Object.keys(requests)) {
      const merged = new Uint32Array(BUCKETS);
      for (const slot of slots) addInto(merged, slot.latency.get(outcome));
      addInto(all, merged);
      latency[outcome] = percentiles(merged);
    }
    latency.all = percentiles(all);
    const errors = sumMaps(slots.map((s) => s.upstreamErrors));
    return {
      seconds,
      requests,
      hit_rate: hitRate(requests),
      tiers,
      latency,
      saved: {
        prompt_tokens: slots.reduce((n, s) => n + s.promptTokens, 0),
        completion_tokens: slots.reduce((n, s) => n + s.completionTokens, 0),
        cost_usd: roundUsd(slots.reduce((n, s) => n + s.costUsd, 0)),
      },
      upstream_errors: { total: Object.values(errors).reduce((a, b) => a + b, 0), by_code: errors },
    };
  }

  /** One point per 10-second slot over the last 15 minutes, oldest first; empty slots are zeros. */
  timeline(): { step_s: number; points: TimelinePoint[] } {
    const current = Math.floor(this.now() / SLOT_MS);
    const points: TimelinePoint[] = [];
    for (let index = current - SLOTS + 1; index <= current; index++) {
      const slot = this.ring[index % SLOTS];
      const live = slot !== undefined && slot.index === index ? slot : undefined;
      const requests = live === undefined ? {} : Object.fromEntries(live.requests);
      const merged = new Uint32Array(BUCKETS);
      if (live !== undefined) for (const buckets of live.latency.values()) addInto(merged, buckets);
      const p = percentiles(merged);
      points.push({
        t: index * SLOT_MS, requests: Object.values(requests).reduce((a, b) => a + b, 0), outcomes: requests, hit_rate: hitRate(requests),
        p50_ms: p.p50_ms, p95_ms: p.p95_ms, p99_ms: p.p99_ms, cost_usd: roundUsd(live?.costUsd ?? 0),
      });
    }
    return { step_s: SLOT_MS / 1000, points };
  }

  /** The current ten-second slot, reset when its time comes round again. */
  private current(): Slot {
    const index = Math.floor(this.now() / SLOT_MS);
    const slot = this.ring[index % SLOTS]!;
    if (slot.index !== index) slot.reset(index);
    return slot;
  }

  private recent(span: number): Slot[] {
    const current = Math.floor(this.now() / SLOT_MS);
    return this.ring.filter((slot) => slot.index > current - span && slot.index <= current);
  }
}

function addRequest(slot: Slot, outcome: string, bucket: number): void {
  slot.requests.set(outcome, (slot.requests.get(outcome) ?? 0) + 1);
  let buckets = slot.latency.get(outcome);
  if (buckets === undefined) slot.latency.set(outcome, (buckets = new Uint32Array(BUCKETS)));
  buckets[bucket]!++;
}

function addLookup(slot: Slot, tier: string, hit: boolean): void {
  let figures = slot.lookups.get(tier);
  if (figures === undefined) slot.lookups.set(tier, (figures = { total: 0, hits: 0 }));
  figures.total++;
  if (hit) figures.hits++;
}

function addSaved(slot: Slot, promptTokens: number, completionTokens: number, usd: number): void {
  slot.promptTokens += promptTokens;
  slot.completionTokens += completionTokens;
  slot.costUsd += usd;
}

function bucketOf(ms: number): number {
  if (!(ms > BUCKET_MIN_MS)) return 0;
  return Math.min(BUCKETS - 1, Math.ceil(Math.log(ms / BUCKET_MIN_MS) / LOG_RATIO));
}

/** The upper bound of a bucket, in ms: a percentile is reported as the bound of the bucket it falls in. */
function boundOf(bucket: number): number {
  return Math.round(BUCKET_MIN_MS * BUCKET_RATIO ** bucket * 1000) / 1000;
}

function percentiles(buckets: Uint32Array): Percentiles {
  let count = 0;
  for (const n of buckets) count += n;
  if (count === 0) return { count, p50_ms: null, p95_ms: null, p99_ms: null };
  return { count, p50_ms: quantile(buckets, count, 0.5), p95_ms: quantile(buckets, count, 0.95), p99_ms: quantile(buckets, count, 0.99) };
}

function quantile(buckets: Uint32Array, count: number, q: number): number {
  const rank = Math.ceil(q * count);
  let seen = 0;
  for (let i = 0; i < buckets.length; i++) {
    seen += buckets[i]!;
    if (seen >= rank) return boundOf(i);
  }
  return boundOf(buckets.length - 1);
}

function addInto(target: Uint32Array, source: Uint32Array | undefined): void {
  if (source === undefined) return;
  for (let i = 0; i < target.length; i++) target[i]! += source[i]!;
}

function sumMaps(maps: Map<string, number>[]): Record<string, number> {
  const sum: Record<string, number> = {};
  for (const map of maps) for (const [key, n] of map) sum[key] = (sum[key] ?? 0) + n;
  return sum;
}

function hitRate(requests: Record<string, number>): number | null {
  let served = 0;
  let cacheable = 0;
  for (const [outcome, n] of Object.entries(requests)) {
    if (SERVED_FROM_CACHE.has(outcome)) served += n;
    if (CACHEABLE.has(outcome)) cacheable += n;
  }
  return cacheable === 0 ? null : served / cacheable;
}

function roundUsd(usd: number): number {
  return Math.round(usd * 1e6) / 1e6;
}
