// Benchmark of the semantic index as the tier uses it (one partition, VectorIndex.search): build time, memory, lookup
// p50/p99 and recall@1 against exact brute-force search, at each size given. Vectors are the local embedder's
// vectors of generated prompts; queries are near-repeats of stored prompts (a word changed), as lookups are.
// Then, end to end, one autocannon run each against one Recall (node dist/main.js, defaults) and the mock upstream:
// exact hits (the same request repeated) and semantic hits (surface variants of it, exact misses every time).
//   npm run bench:semantic [-- --sizes 10000,100000 --dimensions 512 --queries 1000 --e2e-duration 5 --connections 50]
import { parseArgs } from 'node:util';
import { buildIfStale, ChildProcesses, LoadGenerator, startRecall, startScript, summariseLatency } from './bench-harness.js';
import { cosine } from '../src/cache/semantic/embedder.js';
import { LocalEmbedder } from '../src/cache/semantic/local-embedder.js';
import { VectorIndex } from '../src/cache/semantic/vector-index.js';

const { values: args } = parseArgs({ options: {
  sizes: { type: 'string', default: '10000,100000' },
  dimensions: { type: 'string', default: '512' },
  queries: { type: 'string', default: '1000' },
  'e2e-duration': { type: 'string', default: '5' },
  connections: { type: 'string', default: '50' },
} });
const dimensions = Number(args.dimensions);
const queryCount = Number(args.queries);
const embedder = new LocalEmbedder(dimensions);

const SUBJECTS = ['invoice', 'garden', 'router', 'recipe', 'contract', 'kernel', 'holiday', 'budget', 'thesis', 'engine', 'playlist', 'vaccine', 'mortgage', 'server', 'novel', 'lesson'];
const VERBS = ['explain', 'summarise', 'fix', 'plan', 'compare', 'review', 'translate', 'improve', 'describe', 'check'];
const ASPECTS = ['cost', 'history', 'risks', 'steps', 'options', 'timeline', 'errors', 'structure', 'tone', 'limits', 'benefits', 'security'];
/** A prompt from its number: distinct words per prompt, so vectors spread like real prompts', not like noise. */
function prompt(i: number, variant = 0): string {
  const pick = <T>(list: readonly T[], n: number) => list[n % list.length]!;
  return `${pick(VERBS, i + variant)} the ${pick(ASPECTS, i >> 4)} of my ${pick(SUBJECTS, i)} for client ${pick(SUBJECTS, i >> 8)} ${pick(ASPECTS, i >> 12)} project ${(i * 2654435761) >>> 20}`;
}

for (const size of args.sizes.split(',').map(Number)) {
  const vectors: Float32Array[] = [];
  for (let i = 0; i < size; i++) vectors.push(embedder.embedOne(prompt(i)));
  const rssBefore = process.memoryUsage().rss;
  const index = new VectorIndex(dimensions, size + 1);
  const buildStart = performance.now();
  for (let i = 0; i < size; i++) index.add(vectors[i]!, { partition: 'p', exactKey: `k${i}`, text: '', expiresAt: Infinity });
  const buildS = (performance.now() - buildStart) / 1000;
  const rssAfter = process.memoryUsage().rss;

  const times: number[] = [];
  let agree = 0;
  for (let q = 0; q < queryCount; q++) {
    const target = (q * 7919) % size;
    const query = embedder.embedOne(prompt(target, 1));
    const start = performance.now();
    const found = index.search('p', query, -1)[0];
    times.push(performance.now() - start);
    let best = -1;
    let bestSimilarity = -Infinity;
    for (let i = 0; i < size; i++) {
      const similarity = cosine(query, vectors[i]!);
      if (similarity > bestSimilarity) { bestSimilarity = similarity; best = i; }
    }
    // Ties (equal similarity) count as agreement: either is a correct nearest neighbour.
    if (found !== undefined && (found.meta.exactKey === `k${best}` || Math.abs(found.similarity - bestSimilarity) < 1e-6)) agree++;
  }
  times.sort((a, b) => a - b);
  const at = (p: number) => times[Math.min(times.length - 1, Math.floor(p * times.length))]!;
  console.log(JSON.stringify({
    vectors: size, dimensions, build_s: +buildS.toFixed(2), rss_growth_mb: Math.round((rssAfter - rssBefore) / 1048576),
    index_bytes_estimate_mb: Math.round(index.bytes() / 1048576), lookup_p50_ms: +at(0.5).toFixed(3), lookup_p99_ms: +at(0.99).toFixed(3),
    recall_at_1: +(agree / queryCount).toFixed(3), queries: queryCount,
  }));
  index.clear();
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
    const body = (content: string) => JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }] });
    // Surface variants: other bytes, so other exact keys, and the same words, so the same vector.
    const variants = Array.from({ length: 32 }, (_, i) => body(`${i % 2 ? question.toUpperCase() : question}${' '.repeat(1 + (i >> 1))}`));
    const post = (b: string) => fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: b });
    await post(body(question));
    const check = await post(variants[0]!);
    if (check.headers.get('x-recall-cache') !== 'SEMANTIC') throw new Error(`a variant was answered ${check.headers.get('x-recall-cache')}, not SEMANTIC`);
    const connections = Number(args.connections);
    for (const [name, next] of [['exact hits', () => body(question)], ['semantic hits', (() => { let i = 0; return () => variants[i++ % variants.length]!; })()]] as const) {
      const run = await loads.run({ origin: recall.origin, connections, durationS: e2eDurationS, body: next, tallyHeader: 'x-recall-cache' });
      const latency = summariseLatency(run.latenciesMs);
      console.log(JSON.stringify({ scenario: name, connections, duration_s: e2eDurationS, requests_per_s: Math.round(run.requestsPerSecond), p50_ms: +latency.p50.toFixed(2), p99_ms: +latency.p99.toFixed(2), x_recall_cache: run.headerTally, non2xx: run.non2xx }));
    }
  } finally {
    loads.stopAll();
    children.killNow();
  }
}
