// Benchmark of the semantic index as the tier uses it (one partition, VectorIndex.search): build time, memory, lookup
// p50/p99, recall@1 against exact brute-force search, and the similarity error of quantised graphs, at each size and
// for each HNSW configuration given (compared in one run: the machine is shared, so compare within a run). Vectors
// are the local embedder's vectors of generated prompts; queries are near-repeats of stored prompts (a word changed),
// as lookups are. --instructions N also counts the CPU instructions of N searches under valgrind (callgrind, only
// inside usearch's native search): a figure that does not move with the machine's load.
// Then, end to end, one autocannon run each against one Recall (node dist/main.js, defaults) and the mock upstream:
// exact hits (the same request repeated) and semantic hits (surface variants of it, exact misses every time).
//   npm run bench:semantic [-- --sizes 10000,100000,1000000 --configs f32/16/32,i8/16/32 --build auto --queries 1000
//                             --instructions 200 --dimensions 512 --e2e-duration 5 --connections 50]
// --configs: quantization/connectivity/expansion_search[/expansion_add] (f32, f16, i8); --build: single (one add per vector, as the
// tier inserts), batch (addMany, as an index is built from Redis at start) or auto (single up to 100k).
// --small 16,64,256,1024: instead, what a stored miss costs a small partition (a search, then an insert) when it is
// scanned flat and when it is a graph (the default settings), at each size: how FLAT_LIMIT is chosen.
import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import usearch from 'usearch';
import { BENCH_HEADERS, buildIfStale, CACHE_HEADER, chatBody, ChildProcesses, LoadGenerator, ROOT, roundRobin, semanticVariants, startRecall, startScript, summariseLatency } from './bench-harness.js';
import { cosine } from '../src/cache/semantic/embedder.js';
import { LocalEmbedder } from '../src/cache/semantic/local-embedder.js';
import { CANDIDATES, DEFAULT_HNSW, newGraph, VectorIndex, type HnswSettings } from '../src/cache/semantic/vector-index.js';

const { values: args } = parseArgs({ options: {
  sizes: { type: 'string', default: '10000,100000' },
  configs: { type: 'string', default: `${DEFAULT_HNSW.quantization}/${DEFAULT_HNSW.connectivity}/${DEFAULT_HNSW.expansionSearch}` },
  build: { type: 'string', default: 'auto' },
  dimensions: { type: 'string', default: '512' },
  queries: { type: 'string', default: '1000' },
  instructions: { type: 'string', default: '0' },
  'e2e-duration': { type: 'string', default: '5' },
  connections: { type: 'string', default: '50' },
  small: { type: 'string' },
} });
const dimensions = Number(args.dimensions);
const queryCount = Number(args.queries);
const instructionSearches = Number(args.instructions);
const embedder = new LocalEmbedder(dimensions);
const configs: HnswSettings[] = args.configs.split(',').map((text) => {
  const [quantization, connectivity, expansionSearch, expansionAdd] = text.split('/');
  if (quantization !== 'f32' && quantization !== 'f16' && quantization !== 'i8') throw new Error(`--configs: quantization ${quantization} is not f32, f16 or i8`);
  return { ...DEFAULT_HNSW, quantization, connectivity: Number(connectivity ?? DEFAULT_HNSW.connectivity), expansionSearch: Number(expansionSearch ?? DEFAULT_HNSW.expansionSearch),
    expansionAdd: Number(expansionAdd ?? DEFAULT_HNSW.expansionAdd) };
});

const SUBJECTS = ['invoice', 'garden', 'router', 'recipe', 'contract', 'kernel', 'holiday', 'budget', 'thesis', 'engine', 'playlist', 'vaccine', 'mortgage', 'server', 'novel', 'lesson'];
const VERBS = ['explain', 'summarise', 'fix', 'plan', 'compare', 'review', 'translate', 'improve', 'describe', 'check'];
const ASPECTS = ['cost', 'history', 'risks', 'steps', 'options', 'timeline', 'errors', 'structure', 'tone', 'limits', 'benefits', 'security'];
/** A prompt from its number: distinct words per prompt, so vectors spread like real prompts', not like noise. */
function prompt(i: number, variant = 0): string {
  const pick = <T>(list: readonly T[], n: number) => list[n % list.length]!;
  return `${pick(VERBS, i + variant)} the ${pick(ASPECTS, i >> 4)} of my ${pick(SUBJECTS, i)} for client ${pick(SUBJECTS, i >> 8)} ${pick(ASPECTS, i >> 12)} project ${(i * 2654435761) >>> 20}`;
}

if (args.small !== undefined) {
  compareSmall(args.small.split(',').map(Number));
  process.exit(0);
}

/**
 * Per size: a flat partition and a graph partition filled with the same vectors, then 300 searches of each (near-
 * repeats), then 100 inserts of each; µs per search and per insert, and their sum (a stored miss does both).
 */
function compareSmall(sizes: readonly number[]): void {
  const meta = (i: number) => ({ partition: 'p', exactKey: `k${i}`, text: '', expiresAt: Infinity });
  const µs = (ms: number, n: number) => +((ms * 1_000) / n).toFixed(1);
  for (const size of sizes) {
    const row: Record<string, number | string> = { vectors: size, dimensions };
    for (const [layout, flatLimit] of [['flat', Number.POSITIVE_INFINITY], ['graph', 1]] as const) {
      const index = new VectorIndex(dimensions, size + 1_000, DEFAULT_HNSW, flatLimit);
      for (let i = 0; i < size; i++) index.add(embedder.embedOne(prompt(i)), meta(i));
      const queries = Array.from({ length: 300 }, (_, q) => embedder.embedOne(prompt((q * 7919) % size, 1)));
      const inserts = Array.from({ length: 100 }, (_, i) => embedder.embedOne(prompt(size + i)));
      let start = performance.now();
      for (const query of queries) index.search('p', query, -1);
      const search = µs(performance.now() - start, queries.length);
      start = performance.now();
      inserts.forEach((vector, i) => index.add(vector, meta(size + i)));
      const insert = µs(performance.now() - start, inserts.length);
      Object.assign(row, { [`${layout}_search_us`]: search, [`${layout}_insert_us`]: insert, [`${layout}_miss_us`]: +(search + insert).toFixed(1) });
    }
    console.log(JSON.stringify(row));
  }
}

const rssMb = () => Math.round(process.memoryUsage().rss / 1048576);
const vectorAt = (flat: Float32Array, i: number) => flat.subarray(i * dimensions, (i + 1) * dimensions);
const scratch = mkdtempSync(join(tmpdir(), 'recall-bench-semantic-'));

try {
  for (const size of args.sizes.split(',').map(Number)) {
    const flat = new Float32Array(size * dimensions);
    for (let i = 0; i < size; i++) flat.set(embedder.embedOne(prompt(i)), i * dimensions);
    const queries = new Float32Array(queryCount * dimensions);
    for (let q = 0; q < queryCount; q++) queries.set(embedder.embedOne(prompt((q * 7919) % size, 1)), q * dimensions);
    // The truth: exact brute-force nearest neighbours (usearch's exact search, f32, all cores).
    const truth = usearch.exactSearch(flat, queries, dimensions, 1, usearch.MetricKind.Cos, 0) as { keys: BigUint64Array; distances: Float32Array };
    const build = args.build === 'auto' ? (size <= 100_000 ? 'single' : 'batch') : args.build;

    for (const config of configs) {
      const rssBefore = rssMb();
      const index = new VectorIndex(dimensions, size + 1, config);
      const buildStart = performance.now();
      const meta = (i: number) => ({ partition: 'p', exactKey: `k${i}`, text: '', expiresAt: Infinity });
      if (build === 'single') {
        for (let i = 0; i < size; i++) index.add(vectorAt(flat, i), meta(i));
      } else {
        for (let from = 0; from < size; from += 10_000) {
          const batch = [];
          for (let i = from; i < Math.min(size, from + 10_000); i++) batch.push({ vector: vectorAt(flat, i), meta: meta(i) });
          index.addMany(batch);
        }
      }
      const buildS = (performance.now() - buildStart) / 1000;
      const rssGrowth = rssMb() - rssBefore;

      const times: number[] = [];
      let agree = 0;
      let maxSimilarityError = 0;
      for (let q = 0; q < queryCount; q++) {
        const query = vectorAt(queries, q);
        const start = performance.now();
        const found = index.search('p', query, -1)[0];
        times.push(performance.now() - start);
        if (found === undefined) continue;
        // The found vector's exact similarity: a tie with the best (an identical prompt) counts as agreement.
        const foundExact = cosine(query, vectorAt(flat, Number(found.meta.exactKey.slice(1))));
        if (found.meta.exactKey === `k${truth.keys[q]}` || Math.abs(foundExact - (1 - truth.distances[q]!)) < 1e-6) agree++;
        maxSimilarityError = Math.max(maxSimilarityError, Math.abs(found.similarity - foundExact));
      }
      times.sort((a, b) => a - b);
      const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
      index.clear();
      console.log(JSON.stringify({
        vectors: size, dimensions, quantization: config.quantization, connectivity: config.connectivity, expansion_search: config.expansionSearch, expansion_add: config.expansionAdd,
        build, build_s: +buildS.toFixed(2), rss_growth_mb: rssGrowth,
        lookup_p50_ms: +at(0.5).toFixed(3), lookup_p99_ms: +at(0.99).toFixed(3), recall_at_1: +(agree / queryCount).toFixed(3),
        max_similarity_error: +maxSimilarityError.toFixed(4), queries: queryCount,
        ...(instructionSearches > 0 ? { instructions_per_search: countInstructions(flat, queries, size, config) } : {}),
      }));
    }
  }
} finally {
  rmSync(scratch, { recursive: true, force: true });
}

/**
 * Instructions per search inside usearch's native search, counted by callgrind: the same graph settings, built in one
 * batch and saved, then searched `instructionSearches` times under valgrind.
 */
function countInstructions(flat: Float32Array, queries: Float32Array, size: number, config: HnswSettings): number {
  const graph = newGraph(dimensions, config);
  graph.add(BigUint64Array.from({ length: size }, (_, i) => BigInt(i)), flat, 0);
  const graphPath = join(scratch, 'graph.usearch');
  const queriesPath = join(scratch, 'queries.f32');
  graph.save(graphPath);
  writeFileSync(queriesPath, Buffer.from(queries.buffer, queries.byteOffset, queries.byteLength));
  const out = join(scratch, 'callgrind.out');
  const run = spawnSync('valgrind', ['--tool=callgrind', '--toggle-collect=CompiledIndex::Search*', `--callgrind-out-file=${out}`,
    process.execPath, join(ROOT, 'loadtest', 'search-instructions.mjs'), graphPath, String(dimensions), config.quantization,
    String(config.connectivity), String(config.expansionSearch), queriesPath, String(instructionSearches), String(CANDIDATES)],
  { encoding: 'utf8', stdio: ['ignore', 'ignore', 'pipe'] });
  rmSync(graphPath, { force: true });
  // valgrind's summary on stderr: "==PID== Collected : N"
  const collected = /Collected : (\d+)/.exec(run.stderr);
  if (collected === null) throw new Error('callgrind reported no instruction count');
  return Math.round(Number(collected[1]) / instructionSearches);
}

// End to end: exact hits vs semantic hits through one Recall.
const e2eDurationS = Number(args['e2e-duration']);
if (e2eDurationS > 0) {
  buildIfStale();
  const children = new ChildProcesses();
  const loads = new LoadGenerator();
  try {
    const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0']);
    const recall = await startRecall(children, { name: 'recall', upstreamBaseUrl: `${mock.origin}/v1` });
    const question = 'bench semantic: how do I keep my sourdough starter alive while I travel?';
    const variants = semanticVariants(question, 32);
    const post = (b: string) => fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body: b });
    await post(chatBody(question));
    const check = await post(variants[0]!);
    if (check.headers.get(CACHE_HEADER) !== 'SEMANTIC') throw new Error(`a variant was answered ${check.headers.get(CACHE_HEADER)}, not SEMANTIC`);
    const connections = Number(args.connections);
    for (const [name, next] of [['exact hits', () => chatBody(question)], ['semantic hits', roundRobin(variants)]] as const) {
      const run = await loads.run({ origin: recall.origin, connections, durationS: e2eDurationS, body: next, tallyHeader: CACHE_HEADER });
      const latency = summariseLatency(run.latenciesMs);
      console.log(JSON.stringify({ scenario: name, connections, duration_s: e2eDurationS, requests_per_s: Math.round(run.requestsPerSecond), p50_ms: +latency.p50.toFixed(2), p99_ms: +latency.p99.toFixed(2), x_recall_cache: run.headerTally, non2xx: run.non2xx }));
    }
  } finally {
    loads.stopAll();
    children.killNow();
  }
}
