// Cache-hit benchmark: one repeated chat completion answered by a bare Fastify route returning the same bytes (the
// ceiling, loadtest/ceiling-server.ts), by Recall from its in-memory store and by Recall from Redis, at saturation and
// at a fixed rate spread evenly over each second; prints a Markdown report and saves it as JSON.
//
//   npm run bench:hits -- [--duration 10] [--warmup 2] [--connections 50] [--rate 5000] [--instances 50]
//   npm run bench:hits -- --profile     (saturation on the ceiling and on Recall-memory under `node --cpu-prof`; prints top costs)

import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildIfStale,
  CACHE_HEADER,
  CHAT_ROUTE,
  chatBody,
  ChildProcesses,
  childCpuSeconds,
  commandLine,
  commonBenchSettings,
  LoadGenerator,
  machine,
  machineCpuSeconds,
  mockControl,
  mockRouteCount,
  medianBusyMsPerSecond,
  metOrNot,
  ms,
  ownCpuSeconds,
  parseBenchFlags,
  peakPerWindow,
  positiveNumber,
  primeHit,
  profileSummary,
  recallBuild,
  reportHeading,
  RESULTS_DIR,
  runBenchmarkProcess,
  saveAndPrintReport,
  startRecall,
  startCeiling,
  startRedis,
  startScript,
  STARTUP_TIMEOUT_MS,
  summariseLatency,
  timestampForFile,
  warningsMarkdown,
  withWatchdog,
  type CommonBenchSettings,
  type LatencySummary,
  type LoadOptions,
  type Machine,
  type Server,
} from './bench-harness.js';

/** The one request of the whole benchmark; its repeats are cache hits. */
const BENCH_BODY = chatBody('bench hits: say something short about caches');
/** Time for requests cut off when autocannon stops to reach (or fail to reach) the mock before it is counted. */
const SETTLE_MS = 300;
const PEAK_WINDOW_MS = 10;
/** Above this share of one core used by processes outside the run, a measurement is reported as disturbed. */
const OTHER_CPU_WARNING = 0.15;

const TARGETS = {
  memory: { ratio: 0.6, p99Ms: 2 },
  redis: { ratio: 0.4, p99Ms: 3 },
} as const;

// ---------------------------------------------------------------------------------------------------------------------
// Settings

/** `connections` is scenario A's; `rate` is scenario B's, over all instances. */
interface BenchSettings extends CommonBenchSettings {
  /** Scenario B: single-connection autocannon instances the rate is shared out over, started 1/instances s apart. */
  instances: number;
}

function readSettings(argv: string[]): BenchSettings {
  const flags = parseBenchFlags(argv, ['instances']);
  return { ...commonBenchSettings(flags, 5_000), instances: Math.round(positiveNumber('instances', flags.instances, 50, 1_000)) };
}

/** Upper bound on the whole run; the watchdog stops everything past it. */
function timeBudgetMs(settings: BenchSettings): number {
  // A staggered load starts its last instance almost a second late.
  const perMeasurement = (settings.warmupS + settings.durationS) * 1_000 + 2 * SETTLE_MS + 4_000;
  const measurements = settings.profile ? 2 : 6;
  return 60_000 + 5 * STARTUP_TIMEOUT_MS + measurements * perMeasurement;
}

// ---------------------------------------------------------------------------------------------------------------------
// The servers: the mock upstream (for the priming misses), Redis, the ceiling and the two Recalls

type TargetId = 'ceiling' | 'memory' | 'redis';

const TARGET_LABELS: Record<TargetId, string> = {
  ceiling: 'ceiling (bare Fastify, same bytes)',
  memory: 'Recall hits from memory',
  redis: 'Recall hits from Redis',
};

interface Fleet {
  mock: Server;
  /** Each target's server, and for Recall-redis the redis-server behind it; --profile starts no Redis. */
  targets: Partial<Record<TargetId, { server: Server; store?: Server }>>;
}

async function upstreamChatCount(mock: Server): Promise<number> {
  await sleep(SETTLE_MS);
  return mockRouteCount(mock, CHAT_ROUTE);
}

// ---------------------------------------------------------------------------------------------------------------------
// Measurements

interface Measurement {
  target: TargetId;
  scenario: string;
  /** Mean of autocannon's per-second request counts (summed over instances). */
  requestsPerSecond: number;
  /** Responses (any status) divided by the run's duration. */
  achievedRate: number;
  responses: number;
  /** Responses during the warm-up before the measured run. */
  warmupResponses: number;
  sent: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyMs: LatencySummary;
  busyMsPerSecond: number;
  /** Most responses in any 10 ms window; rate / 100 when perfectly even. */
  peakPer10Ms: number;
  /** CPU µs per completed request: the benchmark process (autocannon), the target server, and redis-server for Recall-redis. */
  cpuUsPerRequest: { client: number; server: number; store: number | null };
  /** Values of x-recall-cache over the measured responses. */
  cacheHeader: Record<string, number>;
  /** Chat completions the mock upstream received during the measured run (0 when every request was a hit). */
  upstreamChat: number;
  /** CPU used by processes outside this run (another benchmark, a build…), as a share of one core. */
  otherCpuCores: number;
}

class Bench {
  constructor(
    private readonly fleet: Fleet,
    private readonly loads: LoadGenerator,
    private readonly settings: BenchSettings,
  ) {}

  async measure(target: TargetId, scenario: string, load: Omit<LoadOptions, 'origin' | 'durationS' | 'body' | 'tallyHeader'>): Promise<Measurement> {
    const { warmupS, durationS } = this.settings;
    process.stderr.write(`  ${scenario}, ${target}: warm-up ${warmupS} s, then ${durationS} s\n`);
    const started = this.fleet.targets[target];
    if (started === undefined) throw new Error(`${target} was not started`);
    const { server, store } = started;
    const options = { ...load, origin: server.origin, body: BENCH_BODY, tallyHeader: CACHE_HEADER };
    const warmup = await this.loads.run({ ...options, durationS: warmupS });
    await sleep(SETTLE_MS);
    await mockControl(this.fleet.mock, 'POST', '/mock/reset');
    const before = this.cpuSnapshot(server, store);
    const run = await this.loads.run({ ...options, durationS });
    const after = this.cpuSnapshot(server, store);
    const perRequest = (key: keyof typeof before): number => ((after[key] - before[key]) * 1e6) / Math.max(1, run.responses);
    const spent = (key: keyof typeof before): number => after[key] - before[key];
    return {
      target,
      scenario,
      requestsPerSecond: run.requestsPerSecond,
      achievedRate: run.responses / run.durationS,
      responses: run.responses,
      warmupResponses: warmup.responses,
      sent: run.sent,
      non2xx: run.non2xx,
      errors: run.errors,
      timeouts: run.timeouts,
      latencyMs: summariseLatency(run.latenciesMs),
      busyMsPerSecond: medianBusyMsPerSecond(run),
      peakPer10Ms: peakPerWindow(run, PEAK_WINDOW_MS),
      cpuUsPerRequest: { client: perRequest('client'), server: perRequest('server'), store: store === undefined ? null : perRequest('store') },
      cacheHeader: run.headerTally,
      upstreamChat: await upstreamChatCount(this.fleet.mock),
      otherCpuCores: (spent('machine') - spent('client') - spent('fleet')) / run.durationS,
    };
  }

  private cpuSnapshot(server: Server, store: Server | undefined): { client: number; server: number; store: number; fleet: number; machine: number } {
    const fleet = [this.fleet.mock, ...Object.values(this.fleet.targets).flatMap((t) => [t.server, ...(t.store === undefined ? [] : [t.store])])];
    return {
      client: ownCpuSeconds(),
      server: childCpuSeconds(server.process),
      store: store === undefined ? Number.NaN : childCpuSeconds(store.process),
      fleet: fleet.reduce((sum, s) => sum + childCpuSeconds(s.process), 0),
      machine: machineCpuSeconds(),
    };
  }
}

function hitsOf(m: Measurement): number {
  return m.cacheHeader.HIT ?? 0;
}

function warningsOf(m: Measurement): string[] {
  const where = `${m.scenario}, ${TARGET_LABELS[m.target]}`;
  const warnings: string[] = [];
  if (m.non2xx > 0) warnings.push(`${where}: ${m.non2xx} non-2xx responses`);
  if (m.errors > 0 || m.timeouts > 0) warnings.push(`${where}: ${m.errors} errors, ${m.timeouts} timeouts`);
  if (m.target !== 'ceiling' && hitsOf(m) !== m.responses) {
    const tally = Object.entries(m.cacheHeader).map(([value, count]) => `${value} ${count}`).join(', ');
    warnings.push(`${where}: ${m.responses - hitsOf(m)} of ${m.responses} responses were not HITs (${CACHE_HEADER}: ${tally})`);
  }
  if (m.upstreamChat > 0) warnings.push(`${where}: the upstream received ${m.upstreamChat} chat completions during the measured run`);
  if (m.otherCpuCores > OTHER_CPU_WARNING) {
    warnings.push(`${where}: other processes used ${(100 * m.otherCpuCores).toFixed(0)} % of a core during the measured run; its numbers are disturbed`);
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------------------------------
// Scenarios

interface SaturationResult {
  ceiling: Measurement;
  memory: Measurement;
  redis: Measurement;
  memoryRatio: number;
  redisRatio: number;
  met: { memory: boolean; redis: boolean };
}

interface FixedRateResult {
  ceiling: Measurement;
  memory: Measurement;
  redis: Measurement;
  met: { memory: boolean; redis: boolean };
}

async function runScenarios(bench: Bench, settings: BenchSettings): Promise<{ saturation: SaturationResult; fixedRate: FixedRateResult }> {
  const saturationLoad = { connections: settings.connections };
  const saturation = {
    ceiling: await bench.measure('ceiling', 'A saturation', saturationLoad),
    memory: await bench.measure('memory', 'A saturation', saturationLoad),
    redis: await bench.measure('redis', 'A saturation', saturationLoad),
  };
  const spreadLoad = { connections: settings.instances, overallRate: settings.rate, staggered: true };
  const scenarioB = `B ${settings.rate} req/s spread`;
  const fixedRate = {
    ceiling: await bench.measure('ceiling', scenarioB, spreadLoad),
    memory: await bench.measure('memory', scenarioB, spreadLoad),
    redis: await bench.measure('redis', scenarioB, spreadLoad),
  };
  const memoryRatio = saturation.memory.requestsPerSecond / saturation.ceiling.requestsPerSecond;
  const redisRatio = saturation.redis.requestsPerSecond / saturation.ceiling.requestsPerSecond;
  return {
    saturation: { ...saturation, memoryRatio, redisRatio, met: { memory: memoryRatio >= TARGETS.memory.ratio, redis: redisRatio >= TARGETS.redis.ratio } },
    fixedRate: {
      ...fixedRate,
      met: { memory: fixedRate.memory.latencyMs.p99 <= TARGETS.memory.p99Ms, redis: fixedRate.redis.latencyMs.p99 <= TARGETS.redis.p99Ms },
    },
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  machine: Machine;
  command: string;
  /** What dist/ was built from at the start of the run. */
  recallBuild: { commit: string; changedSources: string[] };
  settings: Omit<BenchSettings, 'profile'> & { recallLogLevel: string; request: string; latencyResolution: string };
  priming: { memory: string[]; redis: string[]; bodyBytes: number; sameBodyFromBothStores: boolean };
  saturation: SaturationResult;
  fixedRate: FixedRateResult;
  warnings: string[];
}

function cpu(us: number | null): string {
  return us === null ? '-' : Number.isFinite(us) ? us.toFixed(0) : 'n/a';
}

function hitCell(m: Measurement): string {
  if (m.target === 'ceiling') return '-';
  return hitsOf(m) === m.responses ? 'all' : `${hitsOf(m)} of ${m.responses}`;
}

function saturationMarkdown(a: SaturationResult, settings: BenchSettings): string[] {
  const row = (m: Measurement, ratio: string): string =>
    `| ${TARGET_LABELS[m.target]} | ${m.requestsPerSecond.toFixed(0)} | ${ratio} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p99)} | ${m.non2xx} | ` +
    `${m.errors + m.timeouts} | ${m.responses} | ${hitCell(m)} | ${cpu(m.cpuUsPerRequest.client)} / ${cpu(m.cpuUsPerRequest.server)} / ${cpu(m.cpuUsPerRequest.store)} |`;
  return [
    `**Scenario A: saturation, ${settings.connections} connections, ${settings.durationS} s**`,
    '',
    '| target | req/s (mean) | × ceiling | p50 ms | p99 ms | non-2xx | errors | completed | HIT | CPU µs/request: autocannon / server / redis-server |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row(a.ceiling, '1.00'),
    row(a.memory, a.memoryRatio.toFixed(2)),
    row(a.redis, a.redisRatio.toFixed(2)),
    '',
    `Memory hits / ceiling: **${a.memoryRatio.toFixed(2)}** (target ≥ ${TARGETS.memory.ratio}: ${metOrNot(a.met.memory)}); ` +
      `Redis hits / ceiling: **${a.redisRatio.toFixed(2)}** (target ≥ ${TARGETS.redis.ratio}: ${metOrNot(a.met.redis)})`,
  ];
}

function fixedRateMarkdown(b: FixedRateResult, settings: BenchSettings): string[] {
  const row = (m: Measurement): string =>
    `| ${TARGET_LABELS[m.target]} | ${m.achievedRate.toFixed(0)} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p90)} | ${ms(m.latencyMs.p99)} | ${ms(m.latencyMs.max)} | ` +
    `${m.busyMsPerSecond.toFixed(0)} | ${m.peakPer10Ms} | ${m.non2xx} | ${m.errors + m.timeouts} | ${m.responses} | ${hitCell(m)} | ${cpu(m.cpuUsPerRequest.server)} |`;
  const perInstance = settings.rate / settings.instances;
  return [
    `**Scenario B: ${settings.rate} req/s spread over each second (${settings.instances} single-connection autocannon instances at ` +
      `${Number.isInteger(perInstance) ? perInstance : perInstance.toFixed(1)} req/s, started ${(1_000 / settings.instances).toFixed(0)} ms apart), ${settings.durationS} s**`,
    '',
    '| target | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | busy ms/s | peak per 10 ms | non-2xx | errors | completed | HIT | server CPU µs/request |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row(b.ceiling),
    row(b.memory),
    row(b.redis),
    '',
    `Hit p99 from memory: **${ms(b.memory.latencyMs.p99)} ms** (target ≤ ${TARGETS.memory.p99Ms} ms: ${metOrNot(b.met.memory)}); ` +
      `from Redis: **${ms(b.redis.latencyMs.p99)} ms** (target ≤ ${TARGETS.redis.p99Ms} ms: ${metOrNot(b.met.redis)})`,
    '',
    `"busy ms/s": median over the seconds of the time between the first and the last response of that second (≈ 1000 when spread). ` +
      `"peak per 10 ms": the most responses in any 10 ms window (${settings.rate / 100} if perfectly even).`,
  ];
}

function measurementsOf(report: Pick<Report, 'saturation' | 'fixedRate'>): Measurement[] {
  const { saturation: a, fixedRate: b } = report;
  return [a.ceiling, a.memory, a.redis, b.ceiling, b.memory, b.redis];
}

function maxOtherCpu(report: Report): number {
  return Math.max(0, ...measurementsOf(report).map((m) => m.otherCpuCores));
}

function reportMarkdown(report: Report, settings: BenchSettings): string {
  const { priming } = report;
  return [
    ...reportHeading('Recall cache-hit benchmark', report.date, report.machine, report.command),
    `- Recall build: commit ${report.recallBuild.commit}` +
      (report.recallBuild.changedSources.length === 0 ? '' : ` with uncommitted changes to ${report.recallBuild.changedSources.join(', ')}`),
    `- other processes during the measurements: at most ${(100 * maxOtherCpu(report)).toFixed(0)} % of a core (warning above ${100 * OTHER_CPU_WARNING} %)`,
    `- settings: warm-up ${settings.warmupS} s then ${settings.durationS} s per measurement, one target at a time; Recall defaults ` +
      `(log level ${report.settings.recallLogLevel}, stdout to /dev/null), memory store or a throwaway local redis-server`,
    `- request: ${report.settings.request}; answer ${priming.bodyBytes} bytes ` +
      `(priming memory: ${priming.memory.join(' → ')}, Redis: ${priming.redis.join(' → ')}; same body from both stores: ${priming.sameBodyFromBothStores ? 'yes' : 'NO'})`,
    `- latency: ${report.settings.latencyResolution}`,
    '',
    ...saturationMarkdown(report.saturation, settings),
    '',
    ...fixedRateMarkdown(report.fixedRate, settings),
    '',
    ...warningsMarkdown(report.warnings),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// Main

/**
 * Starts the mock upstream, Recall-memory, the ceiling and (unless profiling) Redis with Recall-redis, primes both
 * Recalls and gives the ceiling the exact bytes of Recall's hit. With `profileDir`, Recall-memory and the ceiling run
 * under `node --cpu-prof`, each writing into its own subfolder.
 */
async function startFleet(children: ChildProcesses, profileDir: string | undefined): Promise<{ fleet: Fleet; priming: Report['priming'] }> {
  const cpuProf = (name: string): string[] => (profileDir === undefined ? [] : ['--cpu-prof', '--cpu-prof-dir', join(profileDir, name)]);
  const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0', '--latency-ms', '0']);
  const upstreamBaseUrl = `${mock.origin}/v1`;
  const memory = await startRecall(children, { name: 'Recall (memory)', upstreamBaseUrl, nodeFlags: cpuProf('memory') });
  const memoryPriming = await primeHit(memory, BENCH_BODY);
  const ceiling = await startCeiling(children, memoryPriming.body, cpuProf('ceiling'));
  if (profileDir !== undefined) {
    const fleet: Fleet = { mock, targets: { ceiling: { server: ceiling }, memory: { server: memory } } };
    return { fleet, priming: { memory: memoryPriming.outcomes, redis: [], bodyBytes: memoryPriming.body.length, sameBodyFromBothStores: true } };
  }
  const redisServer = await startRedis(children);
  const redis = await startRecall(children, { name: 'Recall (Redis)', upstreamBaseUrl, env: { RECALL_REDIS_URL: redisServer.origin } });
  const redisPriming = await primeHit(redis, BENCH_BODY);
  return {
    fleet: { mock, targets: { ceiling: { server: ceiling }, memory: { server: memory }, redis: { server: redis, store: redisServer } } },
    priming: {
      memory: memoryPriming.outcomes,
      redis: redisPriming.outcomes,
      bodyBytes: memoryPriming.body.length,
      sameBodyFromBothStores: memoryPriming.body.equals(redisPriming.body),
    },
  };
}

async function stopFleet(children: ChildProcesses, fleet: Fleet): Promise<void> {
  const started = Object.values(fleet.targets).flatMap((target) => [target.server, ...(target.store === undefined ? [] : [target.store])]);
  // node writes a --cpu-prof profile when the process exits after SIGTERM, so every child gets a clean stop.
  for (const server of [...started, fleet.mock]) await children.stop(server.process);
}

function buildReport(settings: BenchSettings, argv: string[], started: Date, build: Report['recallBuild'], priming: Report['priming'], scenarios: Pick<Report, 'saturation' | 'fixedRate'>): Report {
  const warnings = measurementsOf(scenarios).flatMap(warningsOf);
  if (priming.memory.join() !== 'MISS,HIT') warnings.push(`priming Recall (memory): ${priming.memory.join(' → ')} instead of MISS → HIT`);
  if (priming.redis.join() !== 'MISS,HIT') warnings.push(`priming Recall (Redis): ${priming.redis.join(' → ')} instead of MISS → HIT`);
  if (!priming.sameBodyFromBothStores) warnings.push('the memory and Redis hits returned different bodies; the ceiling serves the memory one');
  return {
    date: started.toISOString(),
    machine: machine(),
    command: commandLine('bench:hits', 'loadtest/bench-hits.ts', argv),
    recallBuild: build,
    settings: {
      durationS: settings.durationS,
      warmupS: settings.warmupS,
      connections: settings.connections,
      rate: settings.rate,
      instances: settings.instances,
      recallLogLevel: 'info (default)',
      request: `\`POST /v1/chat/completions\` \`${BENCH_BODY}\` with \`Authorization: Bearer sk-bench\`, the same every time`,
      latencyResolution: 'per response from the autocannon `response` event (process.hrtime, sub-µs), shown to 0.01 ms',
    },
    priming,
    ...scenarios,
    warnings,
  };
}

async function runAll(settings: BenchSettings, argv: string[], children: ChildProcesses, loads: LoadGenerator, started: Date): Promise<void> {
  buildIfStale();
  const build = recallBuild();
  const { fleet, priming } = await startFleet(children, undefined);
  let scenarios: Pick<Report, 'saturation' | 'fixedRate'>;
  try {
    scenarios = await runScenarios(new Bench(fleet, loads, settings), settings);
  } finally {
    await stopFleet(children, fleet);
  }
  const report = buildReport(settings, argv, started, build, priming, scenarios);
  saveAndPrintReport('hits', started, report, reportMarkdown(report, settings));
}

/** Saturation on the ceiling, then on Recall-memory, each under --cpu-prof; prints both profiles' top self-time costs. */
async function runProfile(settings: BenchSettings, children: ChildProcesses, loads: LoadGenerator, started: Date): Promise<void> {
  const profileDir = join(RESULTS_DIR, `profile-hits-${timestampForFile(started)}`);
  buildIfStale();
  const { fleet } = await startFleet(children, profileDir);
  const measured: Measurement[] = [];
  try {
    const bench = new Bench(fleet, loads, settings);
    for (const target of ['ceiling', 'memory'] as const) measured.push(await bench.measure(target, 'A saturation (profiled)', { connections: settings.connections }));
  } finally {
    await stopFleet(children, fleet);
  }
  for (const m of measured) {
    console.log(
      `\n## ${TARGET_LABELS[m.target]} under --cpu-prof: ${m.requestsPerSecond.toFixed(0)} req/s, p50 ${ms(m.latencyMs.p50)} ms, p99 ${ms(m.latencyMs.p99)} ms, ` +
        `non-2xx ${m.non2xx}, errors ${m.errors}, HIT ${hitCell(m)}, CPU ${cpu(m.cpuUsPerRequest.server)} µs/request, ` +
        `other processes ${(100 * m.otherCpuCores).toFixed(0)} % of a core\n`,
    );
    // The profile covers the process's whole life; the requests it served are the warm-up's and the measured ones.
    console.log(profileSummary(join(profileDir, m.target), 30, m.warmupResponses + m.responses));
  }
}

async function runBenchmark(argv: string[], children: ChildProcesses, loads: LoadGenerator): Promise<void> {
  const settings = readSettings(argv);
  await withWatchdog('bench-hits', timeBudgetMs(settings), loads, children, async () => {
    const started = new Date();
    if (settings.profile) await runProfile(settings, children, loads, started);
    else await runAll(settings, argv, children, loads, started);
  });
}

const children = new ChildProcesses();
const loads = new LoadGenerator();

runBenchmarkProcess('bench-hits', 'stopping the load and every child', loads, children, () => runBenchmark(process.argv.slice(2), children, loads));
