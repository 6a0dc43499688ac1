// Sizing figures for docs/SCALING.md, each measured, none a throughput race:
//  1. Redis memory per entry: N distinct chat completions through one Recall (node dist/main.js) on a throwaway
//     redis-server, INFO memory before and after, split into exact-tier entries and the semantic stream; then the
//     same count of entries with larger bodies written by RedisStore (the code Recall stores with), for the slope.
//  2. CPU per cache hit: autocannon repeating one request against that Recall; CPU seconds of Recall and of
//     redis-server per hit give hits per second per fully used core (robust on a shared machine; raw req/s is not).
//  3. Semantic index memory: VectorIndex.bytes() after adding V local-embedder vectors, extrapolated to a million.
//   npm run bench:sizing [-- --entries 20000 --hit-seconds 10 --vectors 100000 --dimensions 512 --cluster]
import type { ChildProcess } from 'node:child_process';
import { parseArgs } from 'node:util';
import { Redis } from 'ioredis';
import { buildIfStale, ChildProcesses, childCpuSeconds, LoadGenerator, machineCpuSeconds, startRecall, startRedis, startScript, type Server } from './bench-harness.js';
import { LocalEmbedder } from '../src/cache/semantic/local-embedder.js';
import { VectorIndex } from '../src/cache/semantic/vector-index.js';
import { RedisStore } from '../src/cache/redis-store.js';
import { scanKeys } from '../src/cache/redis-connection.js';
import { startThrowawayCluster } from '../test/support/redis-cluster.js';

const { values: args } = parseArgs({ options: {
  entries: { type: 'string', default: '20000' },
  'hit-seconds': { type: 'string', default: '10' },
  vectors: { type: 'string', default: '100000' },
  dimensions: { type: 'string', default: '512' },
  concurrency: { type: 'string', default: '32' },
  /** Also measure CPU per hit on a local Redis Cluster (three masters, three replicas). */
  cluster: { type: 'boolean', default: false },
} });
const entries = Number(args.entries);
const hitSeconds = Number(args['hit-seconds']);
const vectorCount = Number(args.vectors);
const dimensions = Number(args.dimensions);
const concurrency = Number(args.concurrency);
const GIB = 1024 ** 3;
const PREFIX = 'recall:';

const TOPICS = ['invoice', 'garden', 'router', 'recipe', 'contract', 'kernel', 'holiday', 'budget', 'thesis', 'engine', 'playlist', 'vaccine', 'mortgage'];
/** A user prompt of 15–60 words, distinct per i, so keys, vectors and texts are what real traffic would store. */
function prompt(i: number): string {
  const words: string[] = [`Request ${i}:`];
  const length = 15 + ((i * 2654435761) >>> 0) % 46;
  for (let w = 0; w < length; w++) words.push(TOPICS[(i * 31 + w * 7) % TOPICS.length]!);
  return `${words.join(' ')}?`;
}

async function usedMemory(redis: Redis): Promise<number> {
  return Number(/used_memory:(\d+)/.exec(await redis.info('memory'))![1]);
}

/** Hits through autocannon (50 connections) and the CPU seconds Recall and the Redis processes spent per answer. */
async function measureHits(recall: Server, redisProcesses: ChildProcess[]): Promise<Record<string, number>> {
  const hitBody = JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt(1) }] });
  await fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' }, body: hitBody }).then((r) => r.arrayBuffer());
  const cpu = () => ({
    recall: childCpuSeconds(recall.process),
    redis: redisProcesses.reduce((sum, child) => sum + childCpuSeconds(child), 0),
    machine: machineCpuSeconds(),
  });
  const before = cpu();
  const run = await loads.run({ origin: recall.origin, connections: 50, durationS: hitSeconds, body: hitBody, tallyHeader: 'x-recall-cache' });
  const after = cpu();
  const recallUs = ((after.recall - before.recall) * 1e6) / run.responses;
  const redisUs = ((after.redis - before.redis) * 1e6) / run.responses;
  return {
    seconds: hitSeconds, responses: run.responses, hits: run.headerTally.HIT ?? 0, non2xx: run.non2xx, requests_per_second: Math.round(run.requestsPerSecond),
    recall_cpu_us_per_hit: +recallUs.toFixed(1), redis_cpu_us_per_hit: +redisUs.toFixed(1),
    hits_per_core_second_recall: Math.round(1e6 / recallUs), hits_per_core_second_redis: Math.round(1e6 / redisUs),
    machine_busy_cores: +((after.machine - before.machine) / run.durationS).toFixed(2),
    other_processes_cores: +(((after.machine - before.machine) - (after.recall - before.recall) - (after.redis - before.redis)) / run.durationS).toFixed(2),
  };
}

const children = new ChildProcesses();
const loads = new LoadGenerator();
const stopAll = () => { loads.stopAll(); children.killNow(); };
process.once('SIGINT', () => { stopAll(); process.exit(130); });
const results: Record<string, unknown> = { date: new Date().toISOString(), entries, dimensions };

try {
  buildIfStale();
  const redisServer = await startRedis(children);
  const redis = new Redis(redisServer.origin);
  const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0']);
  const redisEnv = { RECALL_REDIS_URL: redisServer.origin, RECALL_LOG_LEVEL: 'warn' };

  // 1. Entries through Recall: exact tier only, then with the semantic stream, each on an emptied Redis.
  const storeThrough = async (recall: Server) => {
    await redis.flushall();
    await redis.call('MEMORY', 'PURGE');
    const before = await usedMemory(redis);
    let next = 0;
    let failed = 0;
    const send = async () => {
      while (next < entries) {
        const i = next++;
        const response = await fetch(`${recall.origin}/v1/chat/completions`, {
          method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-sizing' },
          body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'system', content: 'You are a helpful assistant.' }, { role: 'user', content: prompt(i) }] }),
        });
        await response.arrayBuffer();
        if (!response.ok) failed++;
      }
    };
    await Promise.all(Array.from({ length: concurrency }, send));
    // The semantic stream is written after the answer; let the last XADDs land.
    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const keys: Buffer[] = [];
    for await (const batch of scanKeys(redis, `${PREFIX}*`, 1000)) keys.push(...batch.keys);
    const sample = keys.slice(0, 500);
    const valueBytes = sample.length === 0 ? 0 : (await Promise.all(sample.map((k) => redis.strlen(k)))).reduce((a, b) => a + b, 0) / sample.length;
    const streamEntries = await redis.xlen(`recall-meta:${PREFIX}semantic`);
    return { failed, keys: keys.length, streamEntries, valueBytes, growth: (await usedMemory(redis)) - before };
  };
  const exactRecall = await startRecall(children, { name: 'recall (semantic off)', upstreamBaseUrl: `${mock.origin}/v1`, env: { ...redisEnv, RECALL_SEMANTIC: 'off' } });
  const exactOnly = await storeThrough(exactRecall);
  await children.stop(exactRecall.process);
  const exactPerEntry = exactOnly.growth / exactOnly.keys;
  const recall = await startRecall(children, { name: 'recall', upstreamBaseUrl: `${mock.origin}/v1`, env: redisEnv });
  const withSemantic = await storeThrough(recall);
  const streamPerEntry = (withSemantic.growth - exactPerEntry * withSemantic.keys) / withSemantic.streamEntries;
  // Vectors not shared (an XADD slower than redis.command_timeout_ms fails open) are counted here.
  const metricsText = await (await fetch(`${recall.origin}/metrics`)).text();
  const feedErrors = Number(/recall_semantic_errors_total\{stage="feed"\} (\d+)/.exec(metricsText)?.[1] ?? 0);
  results.through_recall = {
    requests: entries, failed: exactOnly.failed + withSemantic.failed, mean_value_bytes: Math.round(exactOnly.valueBytes),
    exact_only: { entries: exactOnly.keys, used_memory_growth_bytes: exactOnly.growth, bytes_per_entry: Math.round(exactPerEntry), entries_per_gib: Math.round(GIB / exactPerEntry) },
    with_semantic: {
      entries: withSemantic.keys, stream_entries: withSemantic.streamEntries, feed_errors: feedErrors, used_memory_growth_bytes: withSemantic.growth,
      stream_bytes_per_entry: Math.round(streamPerEntry), entries_per_gib: Math.round(GIB / (exactPerEntry + streamPerEntry)),
    },
  };
  console.log(JSON.stringify({ through_recall: results.through_recall }));

  // Larger bodies, written by the store Recall uses, for the slope of bytes per entry against body size.
  const slope: Record<string, unknown>[] = [];
  for (const bodyBytes of [2_048, 8_192]) {
    await redis.flushall();
    await redis.call('MEMORY', 'PURGE');
    const start = await usedMemory(redis);
    const store = new RedisStore({ url: redisServer.origin, keyPrefix: PREFIX, commandTimeoutMs: 5_000, connectTimeoutMs: 5_000 });
    await store.whenReady(5_000);
    const body = Buffer.alloc(bodyBytes, 'a');
    const now = Date.now();
    for (let i = 0; i < entries; i += 500) {
      await Promise.all(Array.from({ length: Math.min(500, entries - i) }, (_, j) =>
        store.set(`${'0'.repeat(8)}:${(i + j).toString(16).padStart(64, '0')}`, { body, storedAt: now, expiresAt: now + 86_400_000 })));
    }
    const perEntry = ((await usedMemory(redis)) - start) / entries;
    slope.push({ body_bytes: bodyBytes, bytes_per_entry: Math.round(perEntry), entries_per_gib: Math.round(GIB / perEntry) });
    await store.close();
  }
  results.by_body_size = slope;
  console.log(JSON.stringify({ by_body_size: slope }));
  await redis.flushall();

  // 2. CPU per hit: one request, stored, then repeated; on the standalone server, then (--cluster) on a local Cluster.
  results.hits = await measureHits(recall, [redisServer.process]);
  console.log(JSON.stringify({ hits: results.hits }));
  redis.disconnect();
  for (const child of [recall, redisServer]) await children.stop(child.process);
  if (args.cluster) {
    const cluster = await startThrowawayCluster();
    try {
      const onCluster = await startRecall(children, { name: 'recall (cluster)', upstreamBaseUrl: `${mock.origin}/v1`, env: { RECALL_REDIS_CLUSTER: cluster.seeds, RECALL_LOG_LEVEL: 'warn' } });
      results.cluster_hits = await measureHits(onCluster, cluster.nodes.map((n) => n.process));
      console.log(JSON.stringify({ cluster_hits: results.cluster_hits }));
      await children.stop(onCluster.process);
    } finally {
      await cluster.stop();
    }
  }
  await children.stop(mock.process);

  // 3. Semantic index memory.
  if (vectorCount > 0) {
    const embedder = new LocalEmbedder(dimensions);
    const index = new VectorIndex(dimensions, vectorCount + 1);
    const started = performance.now();
    for (let i = 0; i < vectorCount; i++) index.add(embedder.embedOne(prompt(i)), { partition: 'p', exactKey: `k${i}`, text: prompt(i), expiresAt: Number.MAX_SAFE_INTEGER });
    const bytes = index.bytes();
    results.semantic_index = {
      vectors: vectorCount, dimensions, build_s: +((performance.now() - started) / 1000).toFixed(1), index_bytes: bytes,
      bytes_per_vector: Math.round(bytes / vectorCount), per_million_gib_extrapolated: +((bytes / vectorCount) * 1e6 / GIB).toFixed(2),
    };
    console.log(JSON.stringify({ semantic_index: results.semantic_index }));
    index.clear();
  }
} finally {
  stopAll();
}
