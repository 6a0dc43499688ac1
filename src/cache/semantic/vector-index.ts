// The in-process vector index of the semantic tier: one small index per partition (tenant, namespace, model,
// parameters, system prompt, earlier turns), so a lookup only ever sees vectors of its own partition.
//
// Why per partition and not one global index filtered after search: a global top-k can be crowded out by other
// partitions' vectors (many tenants asking the same thing), silently missing the one that matters. Per partition the
// answer is exact for the partition. Most partitions hold a handful of vectors, where an exact scan over one flat array
// costs less than a graph (whose every insert is a search); a partition that grows past FLAT_LIMIT moves into its own
// usearch HNSW index (cosine), measured in docs/SEMANTIC.md (npm run bench:semantic).
import usearch from 'usearch';
import type { PurgeScope } from '../store.js';
import { cosine } from './embedder.js';

const { Index, MetricKind, ScalarKind, exactSearch } = usearch;
type HnswIndex = InstanceType<typeof Index>;

/**
 * Below this many vectors a partition is scanned exactly; at it, it moves into an HNSW graph. Measured at 512
 * dimensions (docs/SEMANTIC.md, "Flat partitions"): a stored miss (a search, then an insert) costs a flat partition
 * less than a graph up to about 400 vectors, and the scan grows linearly past that; the limit stays below the crossing.
 */
export const FLAT_LIMIT = 256;
/**
 * Up to this many vectors a flat partition is scanned in JavaScript: usearch's exact search costs about as much as
 * five JavaScript dot products before it compares the first vector.
 */
const SCAN_IN_JS_UP_TO = 4;

/** How a partition's HNSW graph is built and searched. */
export interface HnswSettings {
  /** Neighbours per node. */
  connectivity: number;
  /** Breadth of the search when adding, and when querying. */
  expansionAdd: number;
  expansionSearch: number;
  /** How the graph stores vectors: f32 as given, f16 (half the bytes), i8 (a quarter). */
  quantization: 'f32' | 'f16' | 'i8';
}

const SCALARS = { f32: { kind: ScalarKind.F32, bytes: 4 }, f16: { kind: ScalarKind.F16, bytes: 2 }, i8: { kind: ScalarKind.I8, bytes: 1 } } as const;

/**
 * Chosen with npm run bench:semantic (docs/SEMANTIC.md), at 100k vectors in one run: f16 holds half the bytes of f32
 * and takes 24% fewer instructions a search with the same recall@1 (0.995), and its similarities stay within 1e-4 of
 * the exact ones (i8: 40% fewer, but off by up to 0.004, which the threshold would feel). Expansion 32 when adding,
 * not 64: building one partition to 100k vectors one insert at a time (as stored misses do) took 73 µs an insert on
 * average instead of 194 µs, for recall@1 0.984 instead of 0.996 at 100k (16: 34 µs, but recall@1 0.882).
 */
export const DEFAULT_HNSW: HnswSettings = { connectivity: 16, expansionAdd: 32, expansionSearch: 32, quantization: 'f16' };

/** An empty usearch HNSW graph (cosine) with these settings. */
export function newGraph(dimensions: number, settings: HnswSettings): HnswIndex {
  return new Index({
    metric: MetricKind.Cos, quantization: SCALARS[settings.quantization].kind, multi: false, dimensions,
    connectivity: settings.connectivity, expansion_add: settings.expansionAdd, expansion_search: settings.expansionSearch,
  });
}
/** Candidates returned per lookup: the best, and a few runners-up in case the best fails a guard or has expired. */
export const CANDIDATES = 3;

/**
 * Past this many vectors in one partition, expansion 32 loses recall (recall@1 0.79 at 1M, 0.997 at 100k), so the
 * search is widened to WIDE_SEARCH_BREADTH results (0.985 at 1M, p50 0.49 ms; 256 gave 0.998 at 0.84 ms), measured
 * in docs/SEMANTIC.md.
 */
const WIDE_SEARCH_FROM = 100_000;
const WIDE_SEARCH_BREADTH = 128;

/** What is kept per vector: enough to find and check its entry. */
export interface VectorMeta {
  partition: string;
  /** The exact tier's key of the entry this vector stands for. */
  exactKey: string;
  /** The last user message that was embedded; the guards compare it with the request's. */
  text: string;
  /** Epoch ms: when the entry expires, the vector goes too (swept), whether or not it is ever looked at. */
  expiresAt: number;
}

export interface Candidate {
  label: number;
  similarity: number;
  meta: VectorMeta;
}

/**
 * The vectors of a partition below FLAT_LIMIT, back to back in one array (row i is labels[i]'s), which usearch scans
 * in native code without a copy. A removal moves the last row into the hole: the order of rows does not matter.
 */
class FlatRows {
  labels: number[] = [];
  private rows: Float32Array;

  constructor(private readonly dimensions: number) {
    this.rows = new Float32Array(dimensions);
  }

  get count(): number {
    return this.labels.length;
  }

  push(label: number, vector: Float32Array): void {
    const at = this.labels.length * this.dimensions;
    if (at + this.dimensions > this.rows.length) {
      const grown = new Float32Array(Math.max(this.rows.length * 2, this.dimensions * 4));
      grown.set(this.rows);
      this.rows = grown;
    }
    this.rows.set(vector, at);
    this.labels.push(label);
  }

  remove(label: number): void {
    const at = this.labels.indexOf(label);
    if (at < 0) return;
    const last = this.labels.length - 1;
    if (at !== last) {
      this.labels[at] = this.labels[last]!;
      this.rows.copyWithin(at * this.dimensions, last * this.dimensions, (last + 1) * this.dimensions);
    }
    this.labels.pop();
  }

  /** Frees the rows (the partition moved into a graph). */
  clear(): void {
    this.labels = [];
    this.rows = new Float32Array(0);
  }

  row(i: number): Float32Array {
    return this.rows.subarray(i * this.dimensions, (i + 1) * this.dimensions);
  }

  /** Every row, for a batch insert into a graph. */
  all(): Float32Array {
    return this.rows.subarray(0, this.labels.length * this.dimensions);
  }

  /** The `count` most similar rows, best first, as [row, similarity]. */
  nearest(vector: Float32Array, count: number): [number, number][] {
    const n = this.labels.length;
    if (n <= SCAN_IN_JS_UP_TO) {
      const scored: [number, number][] = [];
      for (let i = 0; i < n; i++) scored.push([i, cosine(vector, this.row(i))]);
      return scored.sort((a, b) => b[1] - a[1]).slice(0, count);
    }
    // One thread, as for a graph's search. usearch's cosine distance is 1 - similarity.
    const matches = exactSearch(this.all(), vector, this.dimensions, Math.min(count, n), MetricKind.Cos, 1);
    return Array.from(matches.keys, (row, i) => [Number(row), 1 - matches.distances[i]!]);
  }
}

class Partition {
  readonly flat: FlatRows;
  hnsw: HnswIndex | undefined;
  size = 0;

  constructor(dimensions: number) {
    this.flat = new FlatRows(dimensions);
  }
}

export class VectorIndex {
  private readonly partitions = new Map<string, Partition>();
  /** Every vector by label, in insertion order: the first is the oldest, evicted first past maxVectors. */
  private readonly metas = new Map<number, VectorMeta>();
  private readonly labelByKey = new Map<string, number>();
  private nextLabel = 1;
  /**
   * No live label is smaller: labels only increase, so the oldest vector is found by stepping this forward, not by
   * `metas.keys().next()`, which skips the Map's deleted slots on every eviction (see memory-store.ts).
   */
  private oldest = 1;
  private textBytes = 0;

  constructor(
    readonly dimensions: number,
    private readonly maxVectors: number,
    private readonly hnsw: HnswSettings = DEFAULT_HNSW,
    /** Size at which a partition moves into a graph; other values only in benchmarks (flat against graph). */
    private readonly flatLimit = FLAT_LIMIT,
  ) {}

  get size(): number {
    return this.metas.size;
  }

  /**
   * Adds a vector for an entry; an older vector of the same entry is replaced. Returns false for a vector of the
   * wrong length (another embedder's, from Redis).
   */
  add(vector: Float32Array, meta: VectorMeta): boolean {
    return this.addMany([{ vector, meta }]) === 1;
  }

  /**
   * Adds many vectors at once (an index built from Redis at start): each HNSW partition takes its share in one batch,
   * spread over the cores. Vectors of the wrong length are skipped; returns how many were added.
   */
  addMany(entries: readonly { vector: Float32Array; meta: VectorMeta }[]): number {
    // The last vector of each entry wins; past maxVectors only the newest can stay.
    const latest = new Map<string, { vector: Float32Array; meta: VectorMeta }>();
    for (const entry of entries) {
      if (entry.vector.length !== this.dimensions) continue;
      latest.delete(entry.meta.exactKey);
      latest.set(entry.meta.exactKey, entry);
    }
    const incoming = [...latest.values()].slice(-this.maxVectors);
    for (const { meta } of incoming) this.removeKey(meta.exactKey);
    while (this.metas.size > 0 && this.metas.size + incoming.length > this.maxVectors) {
      while (!this.metas.has(this.oldest)) this.oldest++;
      this.remove(this.oldest);
    }
    const batches = new Map<Partition, { labels: number[]; vectors: Float32Array[] }>();
    for (const { vector, meta } of incoming) {
      const label = this.nextLabel++;
      let partition = this.partitions.get(meta.partition);
      if (partition === undefined) {
        partition = new Partition(this.dimensions);
        this.partitions.set(meta.partition, partition);
      }
      let batch = batches.get(partition);
      if (batch === undefined) batches.set(partition, batch = { labels: [], vectors: [] });
      batch.labels.push(label);
      batch.vectors.push(vector);
      partition.size++;
      this.metas.set(label, meta);
      this.labelByKey.set(meta.exactKey, label);
      this.textBytes += metaBytes(meta);
    }
    for (const [partition, batch] of batches) {
      if (partition.hnsw !== undefined) {
        this.addToGraph(partition.hnsw, batch.labels, batch.vectors);
        continue;
      }
      batch.labels.forEach((label, i) => partition.flat.push(label, batch.vectors[i]!));
      if (partition.flat.count >= this.flatLimit) this.promote(partition);
    }
    return incoming.length;
  }

  /** The best few vectors of the partition at or above `minSimilarity`, best first. */
  search(partitionKey: string, vector: Float32Array, minSimilarity: number): Candidate[] {
    const partition = this.partitions.get(partitionKey);
    if (partition === undefined || partition.size === 0) return [];
    const found: Candidate[] = [];
    if (partition.hnsw === undefined) {
      const { flat } = partition;
      for (const [row, similarity] of flat.nearest(vector, CANDIDATES)) {
        const label = flat.labels[row]!;
        if (similarity >= minSimilarity) found.push({ label, similarity, meta: this.metas.get(label)! });
      }
      return found;
    }
    // One thread: a lookup is one query, and the request path must not fan out over the cores. Asking for more
    // results widens usearch's search to that many (its expansion is fixed when the graph is made).
    const breadth = partition.size > WIDE_SEARCH_FROM ? WIDE_SEARCH_BREADTH : CANDIDATES;
    const matches = partition.hnsw.search(vector, breadth, 1);
    for (let i = 0; i < matches.keys.length && found.length < CANDIDATES; i++) {
      const label = Number(matches.keys[i]);
      const meta = this.metas.get(label);
      // usearch's cosine distance is 1 - similarity.
      const similarity = 1 - matches.distances[i]!;
      if (meta !== undefined && similarity >= minSimilarity) found.push({ label, similarity, meta });
    }
    return found;
  }

  remove(label: number): void {
    const meta = this.metas.get(label);
    if (meta === undefined) return;
    this.metas.delete(label);
    if (this.labelByKey.get(meta.exactKey) === label) this.labelByKey.delete(meta.exactKey);
    this.textBytes -= metaBytes(meta);
    const partition = this.partitions.get(meta.partition);
    if (partition === undefined) return;
    partition.size--;
    if (partition.hnsw !== undefined) {
      partition.hnsw.remove(BigInt(label));
    } else {
      partition.flat.remove(label);
    }
    if (partition.size === 0) this.partitions.delete(meta.partition);
  }

  /** Drops the vector of an entry, if there is one (its entry left the exact tier, or was found gone). */
  removeKey(exactKey: string): void {
    const label = this.labelByKey.get(exactKey);
    if (label !== undefined) this.remove(label);
  }

  /** Drops the vectors of every entry whose exact key starts with `prefix` (a namespace purge); returns how many. */
  private removeKeyPrefix(prefix: string): number {
    let removed = 0;
    for (const [label, meta] of this.metas) {
      if (!meta.exactKey.startsWith(prefix)) continue;
      this.remove(label);
      removed++;
    }
    return removed;
  }

  /** Drops the vectors of purged entries: one entry's, a namespace's (keys are `<namespace>:<hash>`), or all. */
  purge(scope: PurgeScope): void {
    if ('key' in scope) this.removeKey(scope.key);
    else if ('namespace' in scope) this.removeKeyPrefix(`${scope.namespace}:`);
    else this.clear();
  }

  /** Drops the vectors whose entries have expired by `now`; returns how many. One pass over the metadata. */
  removeExpired(now: number): number {
    let removed = 0;
    for (const [label, meta] of this.metas) {
      if (meta.expiresAt > now) continue;
      this.remove(label);
      removed++;
    }
    return removed;
  }

  clear(): void {
    this.partitions.clear();
    this.metas.clear();
    this.labelByKey.clear();
    this.textBytes = 0;
  }

  /**
   * Bytes held, estimated: the flat partitions' floats; in HNSW partitions each vector at its quantised width plus
   * the graph's links (about 2 × connectivity 4-byte neighbours on the base layer plus usearch's per-node header);
   * and each vector's metadata.
   */
  bytes(): number {
    let hnswNodes = 0;
    for (const partition of this.partitions.values()) if (partition.hnsw !== undefined) hnswNodes += partition.size;
    const flatVectors = this.metas.size - hnswNodes;
    const perNode = this.dimensions * SCALARS[this.hnsw.quantization].bytes + this.hnsw.connectivity * 2 * 4 + 32;
    return flatVectors * this.dimensions * 4 + hnswNodes * perNode + this.metas.size * 64 + this.textBytes;
  }

  /** A partition at FLAT_LIMIT moves into its own HNSW graph, in one batch over all cores; its flat rows are freed. */
  private promote(partition: Partition): void {
    const graph = newGraph(this.dimensions, this.hnsw);
    graph.add(BigUint64Array.from(partition.flat.labels, BigInt), partition.flat.all(), 0);
    partition.hnsw = graph;
    partition.flat.clear();
  }

  /** One vector is added as it is; several in one batch, over all cores. */
  private addToGraph(graph: HnswIndex, labels: readonly number[], vectors: readonly Float32Array[]): void {
    if (labels.length === 1) {
      graph.add(BigInt(labels[0]!), vectors[0]!, 1);
      return;
    }
    const flat = new Float32Array(labels.length * this.dimensions);
    vectors.forEach((vector, i) => flat.set(vector, i * this.dimensions));
    graph.add(BigUint64Array.from(labels, BigInt), flat, 0);
  }
}

/** The metadata strings' bytes (UTF-16). */
function metaBytes(meta: VectorMeta): number {
  return (meta.text.length + meta.exactKey.length + meta.partition.length) * 2;
}
