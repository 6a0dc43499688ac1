// `npm run bench`: every path of Recall side by side with its comparison, in one bounded run, each server in a process
// of its own and autocannon in this one. Hits (memory, Redis, semantic) against a bare Fastify route returning the same
// bytes; misses against the mock called directly and through Portkey's open-source gateway; a coalescing storm;
// embeddings batching on and off; time to first token of streams; throughput and p99 against connections and against
// cache size. Writes the ratios, tables and an SVG chart into docs/BENCHMARKS.md (between generated-block markers).
//
//   npm run bench                       at most 5 minutes; rewrites the report
//   npm run bench -- --quick            at most 60 s, shorter runs and smaller curves; rewrites the report
//   npm run bench -- --large            the default run plus Redis filled with 1M entries, at most 7 minutes; rewrites the report
//   npm run bench -- --only ceiling,memory-hits   only these steps; prints and saves JSON, leaves the report alone
//   npm run bench -- --profile memory-hits        that step with Recall under node --cpu-prof; prints the top costs
//   npm run bench -- --soak [--soak-minutes 10] [--rate 500]   steady mixed load; RSS and latency drift
//   npm run bench -- --budget 180       another bound, in seconds (a slow or busy machine); steps that do not fit are skipped

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { cpus, tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { parseArgs } from 'node:util';
import { chartsSvg } from './bench-chart.js';
import { CACHE_SIZE_TENANT_SECRET, cacheSizeBody } from './bench-fill.js';
import {
  BENCH_HEADERS,
  buildIfStale,
  CACHE_HEADER,
  chatBody,
  childRssBytes,
  ChildProcesses,
  commandLine,
  Deadline,
  distinctBodies,
  distinctEmbeddingInputs,
  distinctPrompts,
  EMBEDDINGS_BATCHING_CONFIG,
  freePort,
  identicalStorm,
  LoadGenerator,
  machine,
  machineLoad,
  primeHit,
  profileSummary,
  recallBuild,
  RESULTS_DIR,
  ROOT,
  roundRobin,
  runBenchmarkProcess,
  saveAndPrintReport,
  semanticVariants,
  startCeiling,
  startRecall,
  startRedis,
  startScript,
  summariseLatency,
  tail,
  timestampForFile,
  waitForOk,
  type BatchingMode,
  type Server,
} from './bench-harness.js';
import {
  curveCharts,
  replaceBlock,
  reportMarkdown,
  type BenchResults,
  type CacheSizePoint,
  type HitRounds,
  meanOfRounds,
  type RunInfo,
  type Throughput,
  type ThroughputId,
} from './bench-report.js';

const PORTKEY_VERSION = '1.15.2';
const REPORT_FILE = join(ROOT, 'docs', 'BENCHMARKS.md');
const CHART_FILE = 'bench-curves.svg';
const REPORT_BLOCK = 'bench';
const SOAK_BLOCK = 'bench-soak';
/** The one request of every hit run; its repeats are cache hits. */
const HIT_BODY = chatBody('bench hits: say something short about caches');
const SEMANTIC_QUESTION = 'bench semantic: how do I keep my sourdough starter alive while I travel?';
/** Time set aside per request of a storm: a storm of 1000 against the 300 ms mock took about 2 s, on and off. */
const STORM_ALLOWANCE_MS = 10;
/** Kept free at the end of the budget for stopping the servers and writing the report. */
const RESERVE_MS = 8_000;
/**
 * `--large` adds Redis filled with 1M entries to the cache-size curve: filling it takes about 35 s more on this kind of
 * machine (2 cores), which the default 5-minute bound has no room for.
 */
const LARGE_BUDGET_S = 420;
/** Memory stores up to this size are filled and loaded while the other servers start; larger ones in their own step. */
const PRESTARTED_SIZE_MAX = 100_000;

const STEPS = ['ceiling', 'memory-hits', 'redis-hits', 'semantic-hits', 'misses', 'portkey', 'coalesce', 'embeddings', 'ttft', 'connections', 'cache-size'] as const;
type Step = (typeof STEPS)[number];
/** The runs of the hit comparison, measured in rounds. */
const HIT_RUN_IDS = ['ceiling', 'memoryHits', 'redisHits'] as const;

/** The steps --profile can run: those whose server is a Recall. */
const PROFILED: Partial<Record<Step, ThroughputId>> = { 'memory-hits': 'memoryHits', 'redis-hits': 'redisHits', 'semantic-hits': 'semanticHits', misses: 'recallMisses' };

// ---------------------------------------------------------------------------------------------------------------------
// Settings

interface Settings {
  mode: RunInfo['mode'];
  budgetMs: number;
  warmupS: number;
  durationS: number;
  connections: number;
  curveConnections: number[];
  /** Servers measured at each of curveConnections. */
  curveServers: ('ceiling' | 'memory')[];
  /** The misses step's pair against a 300 ms upstream (left out of --quick, whose bound has no room for it). */
  slowUpstream: boolean;
  memorySizes: number[];
  redisSizes: number[];
  stormSize: number;
  firstTokenRequests: number;
  steps: Set<Step>;
  /** Whether every step was selected (only then is the report rewritten). */
  allSteps: boolean;
  profile: Step | undefined;
  /** Rounds of ceiling, memory hits and Redis hits, taking turns. */
  hitRounds: number;
  soak: { minutes: number; rate: number } | undefined;
}

function readSettings(argv: string[]): Settings {
  const { values } = parseArgs({
    args: argv,
    options: {
      quick: { type: 'boolean' },
      large: { type: 'boolean' },
      only: { type: 'string' },
      profile: { type: 'string' },
      soak: { type: 'boolean' },
      'soak-minutes': { type: 'string' },
      rate: { type: 'string' },
      budget: { type: 'string' },
    },
  });
  const quick = values.quick === true;
  const large = values.large === true;
  if (quick && large) throw new Error('--quick and --large do not go together: --large is the default run plus Redis at 1M entries');
  const steps = new Set<Step>(values.only === undefined ? STEPS : values.only.split(',').map((name) => name.trim() as Step));
  for (const step of steps) if (!STEPS.includes(step)) throw new Error(`--only: unknown step '${step}'; the steps are ${STEPS.join(', ')}`);
  const profile = values.profile as Step | undefined;
  if (profile !== undefined && PROFILED[profile] === undefined) throw new Error(`--profile: one of ${Object.keys(PROFILED).join(', ')}, got '${profile}'`);
  const minutes = Number(values['soak-minutes'] ?? 10);
  const rate = Number(values.rate ?? 500);
  if (!(minutes > 0 && minutes <= 60) || !(rate > 0 && rate <= 50_000)) throw new RangeError('--soak-minutes must be in (0, 60] and --rate in (0, 50000]');
  const budgetS = values.budget === undefined ? (quick ? 60 : large ? LARGE_BUDGET_S : 300) : Number(values.budget);
  if (!(budgetS >= 20 && budgetS <= 3_600)) throw new RangeError(`--budget must be a number of seconds in [20, 3600], got '${values.budget}'`);
  return {
    mode: quick ? 'quick' : large ? 'large' : 'default',
    budgetMs: budgetS * 1_000,
    hitRounds: quick ? 1 : 3,
    warmupS: quick ? 0.5 : 1,
    durationS: quick ? 1 : 5,
    connections: 50,
    curveConnections: [1, 10, 50, 200],
    curveServers: quick ? ['memory'] : ['ceiling', 'memory'],
    slowUpstream: !quick,
    memorySizes: quick ? [1_000, 10_000] : [1_000, 100_000, 1_000_000],
    redisSizes: quick ? [1_000] : large ? [1_000, 100_000, 1_000_000] : [1_000, 100_000],
    stormSize: quick ? 200 : 1_000,
    firstTokenRequests: quick ? 30 : 200,
    steps: profile === undefined ? steps : new Set([profile]),
    allSteps: values.only === undefined && profile === undefined,
    profile,
    soak: values.soak === true ? { minutes, rate } : undefined,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The servers, each started once when a step first needs it

/** A step that does not fit in what is left of the budget. */
class OutOfTime extends Error {}

const children = new ChildProcesses();
const loads = new LoadGenerator();

class Fleet {
  private readonly started = new Map<string, Promise<Server>>();
  /** Stopped with SIGKILL: a clean stop would save their whole cache snapshot again. */
  private readonly killOnStop = new Set<string>();
  /** Snapshot files and the cache-size curve's answer. */
  private readonly workDir = mkdtempSync(join(tmpdir(), 'recall-bench-'));
  private answerFile: Promise<string> | undefined;
  /** The body Recall answers HIT_BODY with, which the ceiling serves too. */
  hitAnswer: Buffer | undefined;

  constructor(private readonly profileDir: string | undefined) {}

  private once(name: string, start: () => Promise<Server>): Promise<Server> {
    let server = this.started.get(name);
    if (server === undefined) this.started.set(name, (server = start()));
    return server;
  }

  private nodeFlags(name: string): string[] {
    return this.profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(this.profileDir, name)];
  }

  mock(latencyMs = 0, maxConcurrent?: number): Promise<Server> {
    const args = ['--port', '0', '--latency-ms', String(latencyMs), ...(maxConcurrent === undefined ? [] : ['--max-concurrent', String(maxConcurrent)])];
    return this.once(`mock ${args.join(' ')}`, () => startScript(children, `mock upstream (${latencyMs} ms)`, 'mock-upstream.ts', args));
  }

  /** Recall with defaults, its cache primed with HIT_BODY. */
  recallMemory(): Promise<Server> {
    return this.once('recall memory', async () => {
      const recall = await startRecall(children, { name: 'Recall (memory)', upstreamBaseUrl: `${(await this.mock()).origin}/v1`, nodeFlags: this.nodeFlags('memory') });
      this.hitAnswer = (await primeHit(recall, HIT_BODY)).body;
      return recall;
    });
  }

  ceiling(): Promise<Server> {
    return this.once('ceiling', async () => {
      await this.recallMemory();
      return startCeiling(children, this.hitAnswer as Buffer);
    });
  }

  redis(): Promise<Server> {
    return this.once('redis', () => startRedis(children));
  }

  /** Recall on a throwaway Redis, primed with HIT_BODY; its tenant secret is the cache-size curve's. */
  recallRedis(): Promise<Server> {
    return this.once('recall redis', () => this.primedOnRedis('Recall (Redis)', `cache:\n  tenant_secret: ${CACHE_SIZE_TENANT_SECRET}\n`, this.nodeFlags('redis')));
  }

  /** recallRedis() without its near cache, under a key prefix of its own: every hit is a Redis round trip. */
  recallRedisNoNearCache(): Promise<Server> {
    return this.once('recall redis, no near cache', () =>
      this.primedOnRedis('Recall (Redis, near cache off)', 'redis:\n  key_prefix: "recall-no-near:"\n  near_cache_max_entries: 0\n', []));
  }

  private async primedOnRedis(name: string, configYaml: string, nodeFlags: string[]): Promise<Server> {
    const recall = await startRecall(children, {
      name, upstreamBaseUrl: `${(await this.mock()).origin}/v1`, env: { RECALL_REDIS_URL: (await this.redis()).origin }, configYaml, nodeFlags,
    });
    await primeHit(recall, HIT_BODY);
    return recall;
  }

  /** loadtest/bare-proxy.ts in front of mock(): node:http in, one undici Pool out, nothing else; what any proxy costs. */
  bareProxy(): Promise<Server> {
    return this.once('bare proxy', async () => startScript(children, 'bare proxy', 'bare-proxy.ts', ['--port', '0', '--upstream', (await this.mock()).origin]));
  }

  /** Recall with the semantic tier off, on the same mock as recallMemory(). */
  recallNoSemantic(): Promise<Server> {
    return this.recallWith('Recall, semantic tier off', this.mock(), 'semantic:\n  enabled: false\n');
  }

  /** Recall with defaults in front of slowMock(). */
  recallSlow(): Promise<Server> {
    return this.recallWith('Recall (300 ms upstream)', this.slowMock(), '{}\n');
  }

  private recallWith(name: string, upstream: Promise<Server>, configYaml: string): Promise<Server> {
    return this.once(name, async () => startRecall(children, { name, upstreamBaseUrl: `${(await upstream).origin}/v1`, configYaml }));
  }

  /** A slow upstream, as in a real storm: the first request is still in flight when the others arrive. */
  slowMock(): Promise<Server> {
    return this.mock(300);
  }

  coalescingRecall(mode: 'on' | 'off'): Promise<Server> {
    return this.recallWith(`Recall, coalescing ${mode}`, this.slowMock(), `coalesce:\n  enabled: ${mode === 'on'}\n`);
  }

  /** A provider's concurrency cap: 50 ms per call, at most 8 at once. */
  cappedMock(): Promise<Server> {
    return this.mock(50, 8);
  }

  embeddingsRecall(mode: BatchingMode): Promise<Server> {
    return this.recallWith(`Recall, embeddings batching ${mode}`, this.cappedMock(), EMBEDDINGS_BATCHING_CONFIG[mode]);
  }

  /** Recall with nothing cached, configured like the cache-size curve's: the baseline of memory per entry. */
  emptyRecall(): Promise<Server> {
    return this.recallWith('Recall, empty (memory baseline)', this.mock(), `cache:\n  tenant_secret: ${CACHE_SIZE_TENANT_SECRET}\n`);
  }

  /** The mock's answer to `cacheSizeBody(0)`, in a file: every filled entry holds it. */
  private sizeAnswerFile(): Promise<string> {
    this.answerFile ??= (async () => {
      const answer = await fetch(`${(await this.mock()).origin}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body: cacheSizeBody(0) });
      const file = join(this.workDir, 'answer.json');
      writeFileSync(file, Buffer.from(await answer.arrayBuffer()));
      return file;
    })();
    return this.answerFile;
  }

  /** Recall whose in-memory store starts with `entries` entries, loaded from a snapshot bench-fill.ts wrote. */
  sizedRecall(entries: number): Promise<Server> {
    const name = `Recall (memory, ${entries} entries)`;
    this.killOnStop.add(name);
    return this.once(name, async () => {
      const snapshot = join(this.workDir, `memory-${entries}.jsonl`);
      await fillCache(['--answer-file', await this.sizeAnswerFile(), '--from', '0', '--to', String(entries), '--snapshot', snapshot]);
      try {
        return await startRecall(children, {
          name,
          upstreamBaseUrl: `${(await this.mock()).origin}/v1`,
          configYaml: [
            'cache:', `  tenant_secret: ${CACHE_SIZE_TENANT_SECRET}`, '  memory:', `    max_entries: ${entries + 10_000}`, `    max_bytes: ${64 * 1024 ** 3}`,
            `    persist_path: ${snapshot}`, '    persist_interval_s: 86400', '',
          ].join('\n'),
          startupTimeoutMs: 30_000 + entries * 0.05,
        });
      } finally {
        rmSync(snapshot, { force: true });
      }
    });
  }

  /** Fills the Redis of recallRedis() with entries [from, to); returns Redis's used_memory before and after. */
  async fillRedis(from: number, to: number): Promise<{ before: number; after: number }> {
    const result = await fillCache(['--answer-file', await this.sizeAnswerFile(), '--from', String(from), '--to', String(to), '--redis', (await this.redis()).origin]);
    return { before: result.usedMemoryBefore ?? Number.NaN, after: result.usedMemoryAfter ?? Number.NaN };
  }

  async stop(server: Server): Promise<void> {
    await children.stop(server.process, this.killOnStop.has(server.name) ? 'SIGKILL' : 'SIGTERM');
  }

  /**
   * Starts every server the steps will need, all at once, before anything is measured: start-ups then neither add up
   * nor disturb a measurement. A server that fails to start fails the steps that need it, and only those.
   */
  async startFor(steps: ReadonlySet<Step>, sizes: readonly number[], slowUpstream: boolean): Promise<void> {
    const needs = (...names: Step[]): boolean => names.some((name) => steps.has(name));
    const starts: Promise<unknown>[] = [this.mock()];
    if (needs('ceiling', 'connections')) starts.push(this.ceiling());
    if (needs('memory-hits', 'semantic-hits', 'misses', 'ttft', 'connections')) starts.push(this.recallMemory());
    if (needs('misses')) starts.push(this.bareProxy(), this.recallNoSemantic(), ...(slowUpstream ? [this.recallSlow()] : []));
    if (needs('redis-hits', 'cache-size')) starts.push(this.recallRedis());
    if (needs('redis-hits')) starts.push(this.recallRedisNoNearCache());
    if (needs('portkey')) starts.push(this.portkey());
    if (needs('coalesce')) starts.push(this.coalescingRecall('on'), this.coalescingRecall('off'));
    if (needs('embeddings')) starts.push(this.embeddingsRecall('off'), this.embeddingsRecall('on'));
    if (needs('cache-size')) starts.push(this.emptyRecall(), ...sizes.filter((n) => n <= PRESTARTED_SIZE_MAX).map((n) => this.sizedRecall(n)));
    await Promise.allSettled(starts);
  }

  /**
   * Portkey's gateway from npm (npx, pinned), which reaches the mock through its `x-portkey-custom-host` header. Started
   * early, since npx may have to download it; a failure is kept and reported by the step that needs it.
   */
  portkey(): Promise<Server> {
    return this.once('portkey', async () => {
      const port = await freePort();
      const child = children.spawn('npx', ['-y', `@portkey-ai/gateway@${PORTKEY_VERSION}`, `--port=${port}`, '--headless'], { cwd: tmpdir(), stdio: ['ignore', 'ignore', 'pipe'] }, true);
      const portkey: Server = { name: `Portkey (npx @portkey-ai/gateway@${PORTKEY_VERSION})`, process: child, origin: `http://127.0.0.1:${port}`, stderr: tail(child.stderr) };
      // npx may have to download it first.
      await waitForOk(portkey, '/', 90_000);
      return portkey;
    });
  }

  async stopAll(): Promise<void> {
    const servers = await Promise.allSettled(this.started.values());
    // Recalls first (a --cpu-prof profile is written on a clean exit), then what they depend on.
    const running = servers.flatMap((s) => (s.status === 'fulfilled' ? [s.value] : [])).sort((a, b) => Number(b.name.startsWith('Recall')) - Number(a.name.startsWith('Recall')));
    for (const server of running) await this.stop(server);
    rmSync(this.workDir, { recursive: true, force: true });
  }
}

/** The mock's routing headers for Portkey: provider openai at a custom base URL. */
function portkeyHeaders(mock: Server): Record<string, string> {
  return { 'x-portkey-provider': 'openai', 'x-portkey-custom-host': `${mock.origin}/v1` };
}

// ---------------------------------------------------------------------------------------------------------------------
// Measuring

class Bench {
  readonly results: BenchResults = { throughput: {}, storms: [], firstToken: [], connections: [], cacheSize: [], skipped: [], warnings: [] };
  /** Every round of the hit comparison, by run. */
  readonly hitRuns: HitRounds = { ceiling: [], memoryHits: [], redisHits: [] };

  constructor(
    readonly settings: Settings,
    readonly deadline: Deadline,
    readonly fleet: Fleet,
  ) {}

  /** Warm-up, then the measured run, at `connections` (default settings.connections). */
  async measure(label: string, server: Server, load: { body: string | (() => string); path?: string; connections?: number; headers?: Record<string, string> }): Promise<Throughput> {
    const { warmupS, durationS } = this.settings;
    const connections = load.connections ?? this.settings.connections;
    if (!this.deadline.allows((warmupS + durationS) * 1_000 + 2_000)) throw new OutOfTime(`${label} at ${connections} connections`);
    process.stderr.write(`  ${label}, ${connections} connections: ${warmupS} s warm-up, ${durationS} s\n`);
    const options = { origin: server.origin, connections, body: load.body, tallyHeader: CACHE_HEADER, ...(load.path === undefined ? {} : { path: load.path }), ...(load.headers === undefined ? {} : { headers: load.headers }) };
    await loads.run({ ...options, durationS: warmupS });
    const run = await loads.run({ ...options, durationS });
    const latency = summariseLatency(run.latenciesMs);
    const cacheHeader = Object.fromEntries(Object.entries(run.headerTally).filter(([value]) => value !== '(absent)'));
    const measured = { label, connections, requestsPerSecond: run.requestsPerSecond, p50Ms: latency.p50, p99Ms: latency.p99, responses: run.responses, non2xx: run.non2xx, errors: run.errors + run.timeouts, cacheHeader };
    if (measured.non2xx > 0 || measured.errors > 0) this.results.warnings.push(`${label}: ${measured.non2xx} non-2xx responses, ${measured.errors} errors or timeouts`);
    return measured;
  }

  /** Runs one step unless it was left out; a step that fails or runs out of time is reported and the others go on. */
  async step(step: Step, run: () => Promise<void>): Promise<void> {
    if (!this.settings.steps.has(step)) return;
    process.stderr.write(`${step} (at ${((this.deadline.budgetMs - this.deadline.remainingMs()) / 1_000).toFixed(0)} s)\n`);
    try {
      await run();
    } catch (error) {
      const message = error instanceof Error ? error.message : String(error);
      if (error instanceof OutOfTime) this.results.skipped.push(`${step}: out of time before ${message} (budget ${this.settings.budgetMs / 1_000} s)`);
      else this.results.skipped.push(`${step}: ${message.split('\n')[0]?.slice(0, 300)}`);
    }
  }

  expectAll(label: string, measured: Throughput, outcome: string): void {
    const matching = measured.cacheHeader[outcome] ?? 0;
    if (matching !== measured.responses) this.results.warnings.push(`${label}: ${measured.responses - matching} of ${measured.responses} responses were not ${outcome}`);
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// The steps

async function hits(bench: Bench): Promise<void> {
  const { fleet, results } = bench;
  await hitRound(bench);
  await bench.step('semantic-hits', async () => {
    const recall = await fleet.recallMemory();
    const variants = semanticVariants(SEMANTIC_QUESTION, 32);
    const post = (body: string) => fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body, signal: AbortSignal.timeout(5_000) });
    await (await post(chatBody(SEMANTIC_QUESTION))).arrayBuffer();
    const check = await post(variants[0] as string);
    await check.arrayBuffer();
    if (check.headers.get(CACHE_HEADER) !== 'SEMANTIC') throw new Error(`a near-repeat was answered ${check.headers.get(CACHE_HEADER)}, not SEMANTIC`);
    const measured = (results.throughput.semanticHits = await bench.measure('Recall semantic hits (memory)', recall, { body: roundRobin(variants) }));
    bench.expectAll(measured.label, measured, 'SEMANTIC');
  });
}

/**
 * One round of the ceiling, memory hits and Redis hits, one after the other. The first runs before everything else;
 * the others (up to settings.hitRounds) at the end of the run, as long as the budget allows, so that they take no
 * time from the other steps. Each ratio is then the mean of the rounds: a shared machine whose speed drifts during
 * the run moves both sides of a round alike.
 */
async function hitRound(bench: Bench): Promise<void> {
  const { fleet, results, hitRuns } = bench;
  await bench.step('ceiling', async () => {
    hitRuns.ceiling.push(await bench.measure('ceiling (bare Fastify, same bytes)', await fleet.ceiling(), { body: HIT_BODY }));
  });
  await bench.step('memory-hits', async () => {
    const measured = await bench.measure('Recall hits from memory', await fleet.recallMemory(), { body: HIT_BODY });
    bench.expectAll(measured.label, measured, 'HIT');
    hitRuns.memoryHits.push(measured);
  });
  await bench.step('redis-hits', async () => {
    const measured = await bench.measure('Recall hits from Redis', await fleet.recallRedis(), { body: HIT_BODY });
    bench.expectAll(measured.label, measured, 'HIT');
    hitRuns.redisHits.push(measured);
    // Once, in the first round: what the near cache saves (a reference, without a target).
    if (results.throughput.redisHitsNoNearCache !== undefined) return;
    const direct = (results.throughput.redisHitsNoNearCache = await bench.measure('Recall hits from Redis, near cache off', await fleet.recallRedisNoNearCache(), { body: HIT_BODY }));
    bench.expectAll(direct.label, direct, 'HIT');
  });
  for (const id of HIT_RUN_IDS) {
    const runs = hitRuns[id];
    if (runs.length > 0) results.throughput[id] = meanOfRounds(runs);
  }
}

async function moreHitRounds(bench: Bench): Promise<void> {
  const { settings, deadline, results, hitRuns } = bench;
  if (!HIT_RUN_IDS.some((id) => hitRuns[id].length > 0)) return;
  const selected = (['ceiling', 'memory-hits', 'redis-hits'] as const).filter((step) => settings.steps.has(step)).length;
  const roundMs = selected * ((settings.warmupS + settings.durationS) * 1_000 + 2_000);
  let round = 1;
  for (; round < settings.hitRounds && deadline.allows(roundMs); round++) await hitRound(bench);
  if (round < settings.hitRounds) results.warnings.push(`hits: ${round} of ${settings.hitRounds} rounds fitted in the budget`);
  if (round > 1) results.hitRounds = hitRuns;
}

async function misses(bench: Bench): Promise<void> {
  const { fleet, results } = bench;
  await bench.step('misses', async () => {
    results.throughput.direct = await bench.measure('mock upstream called directly', await fleet.mock(), { body: distinctPrompts().nextBody });
    const measured = (results.throughput.recallMisses = await bench.measure('misses through Recall', await fleet.recallMemory(), { body: distinctPrompts().nextBody }));
    bench.expectAll(measured.label, measured, 'MISS');
    // The floor of any proxy on this machine: one more HTTP server and client on the same cores as the mock.
    results.throughput.bareProxyMisses = await bench.measure('misses through a bare proxy (node:http + undici)', await fleet.bareProxy(), { body: distinctPrompts().nextBody });
    // Where the miss path's time goes: the same misses without the semantic tier's embedding, search and insert.
    const plain = (results.throughput.recallMissesNoSemantic = await bench.measure('misses through Recall, semantic tier off', await fleet.recallNoSemantic(), { body: distinctPrompts().nextBody }));
    bench.expectAll(plain.label, plain, 'MISS');
    // An upstream that takes as long as a short LLM answer, at the most connections of the curves: whether Recall
    // keeps up with the upstream rather than what it costs against a mock that answers in microseconds.
    if (!bench.settings.slowUpstream) return;
    const connections = Math.max(...bench.settings.curveConnections);
    results.throughput.slowDirect = await bench.measure('mock upstream at 300 ms called directly', await fleet.slowMock(), { body: distinctPrompts().nextBody, connections });
    const slow = (results.throughput.recallSlowMisses = await bench.measure('misses through Recall, 300 ms upstream', await fleet.recallSlow(), { body: distinctPrompts().nextBody, connections }));
    bench.expectAll(slow.label, slow, 'MISS');
  });
  await bench.step('portkey', async () => {
    const mock = await fleet.mock();
    const portkey = await fleet.portkey();
    results.throughput.portkeyMisses = await bench.measure(`misses through Portkey ${PORTKEY_VERSION}`, portkey, { body: distinctPrompts().nextBody, headers: portkeyHeaders(mock) });
  });
}

async function coalescing(bench: Bench): Promise<void> {
  const { fleet, results, deadline, settings } = bench;
  await bench.step('coalesce', async () => {
    const mock = await fleet.slowMock();
    for (const mode of ['on', 'off'] as const) {
      if (!deadline.allows(Math.max(3_000, settings.stormSize * STORM_ALLOWANCE_MS))) throw new OutOfTime(`the storm with coalescing ${mode}`);
      const recall = await fleet.coalescingRecall(mode);
      const storm = await identicalStorm(recall, mock, settings.stormSize, chatBody(`bench coalesce ${Date.now()} ${mode}`));
      results.storms.push({ coalescing: mode, requests: storm.requests, ok: storm.ok, upstreamCalls: storm.upstreamCalls, p50Ms: storm.latency.p50, p99Ms: storm.latency.p99 });
    }
  });
  await bench.step('embeddings', async () => {
    const measured: Partial<Record<BatchingMode, Throughput>> = {};
    for (const mode of ['off', 'on'] as const) {
      measured[mode] = await bench.measure(`embeddings, batching ${mode}`, await fleet.embeddingsRecall(mode), { body: distinctEmbeddingInputs().nextBody, path: '/v1/embeddings' });
    }
    results.throughput.embeddingsOff = measured.off;
    results.throughput.embeddingsOn = measured.on;
  });
}

/** Milliseconds from sending a streaming request to its first body bytes. */
async function firstTokenMs(recall: Server, body: string): Promise<{ ms: number; outcome: string }> {
  const started = performance.now();
  const response = await fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body, signal: AbortSignal.timeout(10_000) });
  const reader = response.body?.getReader();
  if (reader === undefined || !response.ok) throw new Error(`a streaming request was answered ${response.status}`);
  await reader.read();
  const ms = performance.now() - started;
  while (!(await reader.read()).done);
  return { ms, outcome: response.headers.get(CACHE_HEADER) ?? '(absent)' };
}

async function firstToken(bench: Bench): Promise<void> {
  const { fleet, results, settings, deadline } = bench;
  await bench.step('ttft', async () => {
    const recall = await fleet.recallMemory();
    const hitBody = chatBody('bench first token: say something short about caches', { stream: true });
    await firstTokenMs(recall, hitBody);
    const misses = distinctBodies((runId, n) => chatBody(`bench first token ${runId} ${n}: say something short`, { stream: true }));
    for (const [label, next, expected] of [['hit', () => hitBody, 'HIT'], ['miss', misses.nextBody, 'MISS']] as const) {
      const times: number[] = [];
      let unexpected = 0;
      for (let i = 0; i < settings.firstTokenRequests; i++) {
        if (!deadline.allows(2_000)) throw new OutOfTime(`time to first token (${label})`);
        const { ms, outcome } = await firstTokenMs(recall, next());
        times.push(ms);
        if (outcome !== expected) unexpected++;
      }
      if (unexpected > 0) results.warnings.push(`time to first token (${label}): ${unexpected} of ${times.length} answers were not ${expected}`);
      const latency = summariseLatency(Float64Array.from(times));
      results.firstToken.push({ label, requests: times.length, p50Ms: latency.p50, p99Ms: latency.p99 });
    }
  });
}

async function connectionCurve(bench: Bench): Promise<void> {
  const { fleet, results, settings } = bench;
  await bench.step('connections', async () => {
    for (const server of settings.curveServers) {
      const label = server === 'ceiling' ? 'ceiling' : 'Recall hits from memory';
      const already = server === 'ceiling' ? results.throughput.ceiling : results.throughput.memoryHits;
      for (const connections of settings.curveConnections) {
        const measured = already?.connections === connections ? already : await bench.measure(label, server === 'ceiling' ? await fleet.ceiling() : await fleet.recallMemory(), { body: HIT_BODY, connections });
        results.connections.push({ series: label, connections, requestsPerSecond: measured.requestsPerSecond, p99Ms: measured.p99Ms });
      }
    }
  });
}

/** Runs bench-fill.ts in its own process and returns its JSON line. */
async function fillCache(args: string[]): Promise<{ filled: number; usedMemoryBefore: number | null; usedMemoryAfter: number | null }> {
  const child = children.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'loadtest', 'bench-fill.ts'), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  let stdout = '';
  const stderr = tail(child.stderr);
  child.stdout?.on('data', (chunk: Buffer) => (stdout += chunk.toString('utf8')));
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`bench-fill ${args.join(' ')} failed (${code}): ${stderr()}`);
  return JSON.parse(stdout.trim().split('\n').at(-1) ?? '{}') as { filled: number; usedMemoryBefore: number | null; usedMemoryAfter: number | null };
}

/** Every request asks for a random entry of the `entries` stored. */
function randomStoredEntry(entries: number): () => string {
  return () => cacheSizeBody(Math.floor(Math.random() * entries));
}

function sizePoint(store: CacheSizePoint['store'], entries: number, measured: Throughput, bytesPerEntry: number): CacheSizePoint {
  return { store, entries, requestsPerSecond: measured.requestsPerSecond, p99Ms: measured.p99Ms, notHits: measured.responses - (measured.cacheHeader.HIT ?? 0), bytesPerEntry };
}

async function cacheSizeCurve(bench: Bench): Promise<void> {
  const { fleet, results, settings, deadline } = bench;
  await bench.step('cache-size', async () => {
    // Memory per entry: the RSS growth over the next smaller store (the empty one first), per added entry.
    let previous = { entries: 0, rss: childRssBytes((await fleet.emptyRecall()).process) };
    for (const entries of settings.memorySizes) {
      // Filling and loading a store takes roughly 40 µs per entry on a loaded machine.
      if (entries > PRESTARTED_SIZE_MAX && !deadline.allows(entries * 0.08 + (settings.warmupS + settings.durationS) * 1_000 + 5_000)) {
        throw new OutOfTime(`the memory store with ${entries} entries`);
      }
      const recall = await fleet.sizedRecall(entries);
      try {
        const measured = await bench.measure(`hits from memory, ${entries} entries`, recall, { body: randomStoredEntry(entries) });
        const rss = childRssBytes(recall.process);
        results.cacheSize.push(sizePoint('memory', entries, measured, (rss - previous.rss) / (entries - previous.entries)));
        previous = { entries, rss };
      } finally {
        await fleet.stop(recall);
      }
    }
    // One Redis, filled further before each size.
    const recall = await fleet.recallRedis();
    let filled = 0;
    let usedBefore: number | undefined;
    for (const entries of settings.redisSizes) {
      if (!deadline.allows((entries - filled) * 0.05 + (settings.warmupS + settings.durationS) * 1_000 + 5_000)) throw new OutOfTime(`Redis with ${entries} entries`);
      const used = await fleet.fillRedis(filled, entries);
      usedBefore ??= used.before;
      filled = entries;
      const measured = await bench.measure(`hits from Redis, ${entries} entries`, recall, { body: randomStoredEntry(entries) });
      results.cacheSize.push(sizePoint('redis', entries, measured, (used.after - usedBefore) / entries));
    }
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Soak: a steady mixed load for minutes, RSS and latency per window

interface SoakWindow {
  /** Seconds since the measured load started, at the end of the window. */
  atS: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  non2xx: number;
  rssMb: number;
}

async function soak(settings: Settings, fleet: Fleet, started: Date, argv: string[]): Promise<void> {
  const { minutes, rate } = settings.soak as { minutes: number; rate: number };
  const recall = await fleet.recallMemory();
  const windowS = Math.min(30, minutes * 6);
  const windows = Math.max(1, Math.round((minutes * 60) / windowS));
  // Nine requests in ten repeat one of 1000 prompts (hits once seen), one in ten is new (a miss that stores an entry).
  const fresh = distinctPrompts();
  let n = 0;
  const body = (): string => (++n % 10 === 0 ? fresh.nextBody() : chatBody(`bench soak ${n % 1000}: say something short about caches`));
  const rows: SoakWindow[] = [];
  // A short warm-up first, so that the first window is not the JIT's.
  await loads.run({ origin: recall.origin, connections: 20, overallRate: rate, staggered: true, durationS: Math.min(10, windowS), body });
  for (let i = 0; i < windows; i++) {
    const run = await loads.run({ origin: recall.origin, connections: 20, overallRate: rate, staggered: true, durationS: windowS, body });
    const latency = summariseLatency(run.latenciesMs);
    rows.push({ atS: (i + 1) * windowS, requestsPerSecond: run.responses / run.durationS, p50Ms: latency.p50, p99Ms: latency.p99, non2xx: run.non2xx, rssMb: childRssBytes(recall.process) / 1024 ** 2 });
    const last = rows[rows.length - 1] as SoakWindow;
    process.stderr.write(`  soak ${last.atS} s: ${last.requestsPerSecond.toFixed(0)} req/s, p99 ${last.p99Ms.toFixed(2)} ms, RSS ${last.rssMb.toFixed(0)} MB\n`);
  }
  const first = rows[0] as SoakWindow;
  const last = rows[rows.length - 1] as SoakWindow;
  const markdown = [
    `## Latest soak run (${started.toISOString()})`,
    '',
    `\`${commandLine('bench', 'loadtest/bench.ts', argv)}\`: ${minutes} min at ${rate} req/s spread over each second against Recall (memory, defaults); ` +
      `nine requests in ten repeat one of 1000 prompts, one in ten is new (a miss that stores an entry); a ${Math.min(10, windowS)} s warm-up first.`,
    '',
    `RSS ${first.rssMb.toFixed(0)} → ${last.rssMb.toFixed(0)} MB (${(last.rssMb - first.rssMb >= 0 ? '+' : '')}${(last.rssMb - first.rssMb).toFixed(0)} MB); ` +
      `p99 ${first.p99Ms.toFixed(2)} → ${last.p99Ms.toFixed(2)} ms (last / first window ${(last.p99Ms / first.p99Ms).toFixed(2)})`,
    '',
    '| at s | req/s | p50 ms | p99 ms | non-2xx | Recall RSS MB |',
    '|---:|---:|---:|---:|---:|---:|',
    ...rows.map((r) => `| ${r.atS} | ${r.requestsPerSecond.toFixed(0)} | ${r.p50Ms.toFixed(2)} | ${r.p99Ms.toFixed(2)} | ${r.non2xx} | ${r.rssMb.toFixed(0)} |`),
    '',
  ].join('\n');
  const report = { warnings: rows.some((r) => r.non2xx > 0) ? ['some answers were not 2xx'] : [], settings: { minutes, rate, windowS }, rows };
  saveAndPrintReport('soak', started, report, markdown);
  writeFileSync(REPORT_FILE, replaceBlock(readFileSync(REPORT_FILE, 'utf8'), SOAK_BLOCK, markdown, REPORT_BLOCK));
  console.log(`report: ${REPORT_FILE}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Main

async function profileRun(bench: Bench, profileDir: string): Promise<void> {
  const step = bench.settings.profile as Step;
  await runSteps(bench);
  await bench.fleet.stopAll();
  const measured = bench.results.throughput[PROFILED[step] as ThroughputId];
  if (measured === undefined) throw new Error(`${step} did not run: ${bench.results.skipped.join('; ')}`);
  console.log(`\n## ${measured.label} under --cpu-prof: ${measured.requestsPerSecond.toFixed(0)} req/s, p50 ${measured.p50Ms.toFixed(2)} ms, p99 ${measured.p99Ms.toFixed(2)} ms\n`);
  console.log(profileSummary(join(profileDir, step === 'redis-hits' ? 'redis' : 'memory'), 25));
}

async function runSteps(bench: Bench): Promise<void> {
  process.stderr.write('starting the servers\n');
  await bench.fleet.startFor(bench.settings.steps, bench.settings.memorySizes, bench.settings.slowUpstream);
  await hits(bench);
  await misses(bench);
  await coalescing(bench);
  await firstToken(bench);
  await connectionCurve(bench);
  await cacheSizeCurve(bench);
  await moreHitRounds(bench);
}

async function main(argv: string[]): Promise<void> {
  const settings = readSettings(argv);
  const started = new Date();
  // The clock starts once dist/ is built: a build only happens after a change to src/.
  buildIfStale();
  const deadline = new Deadline((settings.soak === undefined ? settings.budgetMs : settings.soak.minutes * 60_000 + 60_000) - RESERVE_MS);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench: still running past its budget of ${(deadline.budgetMs + RESERVE_MS) / 1_000} s; stopping\n`);
    loads.stopAll();
    children.killNow();
    process.exit(1);
  }, deadline.budgetMs + RESERVE_MS);
  const loadAtStart = await machineLoad();
  const build = recallBuild();
  const profileDir = settings.profile === undefined ? undefined : join(RESULTS_DIR, `profile-bench-${timestampForFile(started)}`);
  const fleet = new Fleet(profileDir);
  const bench = new Bench(settings, deadline, fleet);
  try {
    if (settings.soak !== undefined) return await soak(settings, fleet, started, argv);
    if (profileDir !== undefined) return await profileRun(bench, profileDir);
    await runSteps(bench);
  } finally {
    await fleet.stopAll();
    clearTimeout(watchdog);
  }
  const host = machine();
  const info: RunInfo = {
    date: started.toISOString(),
    command: commandLine('bench', 'loadtest/bench.ts', argv),
    mode: settings.mode,
    durationS: (Date.now() - started.getTime()) / 1_000,
    cores: host.nproc,
    cpuModel: cpus()[0]?.model ?? 'unknown CPU',
    node: process.version,
    recallCommit: build.commit,
    changedSources: build.changedSources,
    portkeyVersion: PORTKEY_VERSION,
    loadAtStart,
    loadAtEnd: await machineLoad(),
    settings: `${settings.connections} connections unless a curve says otherwise, ${settings.warmupS} s warm-up then ${settings.durationS} s per run; ` +
      `storm of ${settings.stormSize}; ${settings.firstTokenRequests} streams each for time to first token`,
  };
  const markdown = reportMarkdown(info, bench.results, CHART_FILE);
  const report = { info, ...bench.results };
  saveAndPrintReport('bench', started, report, markdown);
  if (!settings.allSteps) {
    console.log('(--only: docs/BENCHMARKS.md left as it is)');
    return;
  }
  writeFileSync(join(ROOT, 'docs', CHART_FILE), chartsSvg(curveCharts(bench.results)));
  writeFileSync(REPORT_FILE, replaceBlock(readFileSync(REPORT_FILE, 'utf8'), REPORT_BLOCK, markdown));
  console.log(`report: ${REPORT_FILE}, chart: docs/${CHART_FILE}`);
}

runBenchmarkProcess('bench', 'stopping the load and every server', loads, children, () => main(process.argv.slice(2)));
