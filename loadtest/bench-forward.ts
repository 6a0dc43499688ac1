// First benchmark of Recall's forwarding path: drives the mock upstream directly and through Recall with autocannon
// (distinct prompts, saturation and fixed-rate scenarios), then prints a Markdown report and saves it as JSON.
// The saturation and spread fixed-rate scenarios also go through loadtest/bare-proxy.ts, the floor any Node proxy costs.
//
//   npm run bench:forward -- [--duration 10] [--warmup 2] [--connections 50] [--rate 500] [--mock-latency-ms N]
//   npm run bench:forward -- --profile     (saturation through Recall only, under `node --cpu-prof`; prints top costs)

import autocannon from 'autocannon';
import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { availableParallelism, cpus, platform, arch } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RESULTS_DIR = join(ROOT, 'loadtest', 'results');
const CHAT_ROUTE = 'POST /v1/chat/completions';
/** Time for requests cut off when autocannon stops to reach (or fail to reach) the mock before it is counted. */
const SETTLE_MS = 300;
const STARTUP_TIMEOUT_MS = 20_000;
const CHILD_STOP_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------------------------
// Settings

interface BenchSettings {
  durationS: number;
  warmupS: number;
  connections: number;
  rate: number;
  /** Mock latencies to run the whole suite with; 0 always comes first. */
  mockLatenciesMs: number[];
  profile: boolean;
}

function positiveNumber(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || value > max) throw new RangeError(`--${name} must be a number in (0, ${max}], got '${raw}'`);
  return value;
}

function readSettings(argv: string[]): BenchSettings {
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      'mock-latency-ms': { type: 'string' },
      profile: { type: 'boolean' },
    },
  });
  const extraLatency = values['mock-latency-ms'] === undefined ? [] : [positiveNumber('mock-latency-ms', values['mock-latency-ms'], 0, 10_000)];
  return {
    durationS: positiveNumber('duration', values.duration, 10, 60),
    warmupS: positiveNumber('warmup', values.warmup, 2, 30),
    connections: Math.round(positiveNumber('connections', values.connections, 50, 1_000)),
    rate: Math.round(positiveNumber('rate', values.rate, 500, 100_000)),
    mockLatenciesMs: [0, ...extraLatency],
    profile: values.profile === true,
  };
}

/** Upper bound on the whole run; the watchdog stops everything past it. */
function timeBudgetMs(settings: BenchSettings): number {
  const perLoadRun = (settings.warmupS + settings.durationS) * 1_000 + 4 * SETTLE_MS + 2_000;
  const loadRunsPerPass = settings.profile ? 1 : 8;
  const passes = settings.mockLatenciesMs.length;
  return 90_000 + passes * (loadRunsPerPass * perLoadRun + 2 * STARTUP_TIMEOUT_MS);
}

function commandLine(argv: string[]): string {
  const args = argv.join(' ');
  if (process.env.npm_lifecycle_event === 'bench:forward') return `npm run bench:forward${args === '' ? '' : ` -- ${args}`}`;
  return `npx tsx loadtest/bench-forward.ts${args === '' ? '' : ` ${args}`}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// Child processes: the mock upstream, the bare proxy and Recall, always stopped on exit, on error and on SIGINT

const children = new Set<ChildProcess>();

function track(child: ChildProcess): ChildProcess {
  children.add(child);
  child.once('exit', () => children.delete(child));
  return child;
}

/** Keeps the last few KB a child wrote to a pipe, for error messages. */
function tail(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4_000);
  });
  return () => text.trim();
}

async function stopChild(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_TIMEOUT_MS);
  await exited;
  clearTimeout(timer);
}

function killChildrenNow(): void {
  for (const child of children) child.kill('SIGKILL');
}

/** A port that was free a moment ago; Recall only reports its port in its logs, which go to /dev/null. */
function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** A child that printed its listening line: the mock upstream, or the bare proxy in front of it. */
interface Mock {
  process: ChildProcess;
  /** http://127.0.0.1:PORT */
  origin: string;
  stderr: () => string;
}

/** Starts a loadtest/*.ts script under tsx and waits for the `listening on http://127.0.0.1:PORT` line it prints. */
function startListening(name: string, script: string, args: string[]): Promise<Mock> {
  const child = track(spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'loadtest', script), ...args], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] }));
  const stderr = tail(child.stderr);
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${STARTUP_TIMEOUT_MS} ms: ${stderr()}`)), STARTUP_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (${code ?? signal}): ${stderr()}`));
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = /listening on (http:\/\/127\.0\.0\.1:\d+)/.exec(stdout);
      if (match?.[1] === undefined) return;
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      child.stdout?.resume();
      resolve({ process: child, origin: match[1], stderr });
    });
  });
}

function startMock(latencyMs: number): Promise<Mock> {
  return startListening('mock upstream', 'mock-upstream.ts', ['--port', '0', '--latency-ms', String(latencyMs)]);
}

/** loadtest/bare-proxy.ts in front of the mock: node:http + one undici Pool, no logging, no framework. */
function startBareProxy(mock: Mock): Promise<Mock> {
  return startListening('bare proxy', 'bare-proxy.ts', ['--port', '0', '--upstream', mock.origin]);
}

interface Recall {
  process: ChildProcess;
  origin: string;
  stderr: () => string;
}

/** Recall with default settings (log level info included), its stdout going to /dev/null. */
async function startRecall(upstreamBaseUrl: string, nodeFlags: string[]): Promise<Recall> {
  const port = await freePort();
  // What a user gets by default: no config file and no RECALL_* setting (log level, upstream key, Redis…) from the caller's shell.
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('RECALL_'));
  const env: NodeJS.ProcessEnv = { ...Object.fromEntries(inherited), RECALL_HOST: '127.0.0.1', RECALL_PORT: String(port), RECALL_UPSTREAM_URL: upstreamBaseUrl };
  const child = track(spawn(process.execPath, [...nodeFlags, join(ROOT, 'dist', 'main.js')], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] }));
  const recall: Recall = { process: child, origin: `http://127.0.0.1:${port}`, stderr: tail(child.stderr) };
  await waitForHealthz(recall);
  return recall;
}

async function waitForHealthz(recall: Recall): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (recall.process.exitCode !== null) throw new Error(`Recall exited early (${recall.process.exitCode}): ${recall.stderr()}`);
    try {
      const response = await fetch(`${recall.origin}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`Recall did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms: ${recall.stderr()}`);
}

function buildIfStale(): void {
  const result = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-if-stale.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`build failed (exit ${result.status ?? result.signal})`);
}

// ---------------------------------------------------------------------------------------------------------------------
// The mock's request counters

interface UpstreamCount {
  chat: number;
  aborted: number;
}

async function mockControl(mock: Mock, method: 'GET' | 'POST', path: string): Promise<unknown> {
  let response: Response;
  try {
    response = await fetch(`${mock.origin}${path}`, { method, signal: AbortSignal.timeout(5_000) });
  } catch (error) {
    const cause = (error as { cause?: { message?: string } }).cause?.message ?? String(error);
    const state = mock.process.exitCode ?? mock.process.signalCode ?? 'still running';
    throw new Error(`mock ${method} ${path} failed: ${cause} (mock process: ${state}; stderr: ${mock.stderr() || 'empty'})`, { cause: error });
  }
  if (!response.ok) throw new Error(`mock ${method} ${path} answered ${response.status}`);
  return response.json();
}

async function resetMock(mock: Mock): Promise<void> {
  await sleep(SETTLE_MS);
  await mockControl(mock, 'POST', '/mock/reset');
}

async function upstreamCount(mock: Mock): Promise<UpstreamCount> {
  await sleep(SETTLE_MS);
  const stats = (await mockControl(mock, 'GET', '/mock/stats')) as { byRoute?: Record<string, number>; aborted?: number };
  return { chat: stats.byRoute?.[CHAT_ROUTE] ?? 0, aborted: stats.aborted ?? 0 };
}

// ---------------------------------------------------------------------------------------------------------------------
// Load generation with autocannon

/** Every request of the whole run gets its own prompt, so a caching Recall could never answer one from cache. */
function distinctPrompts(): { runId: string; nextBody: () => string } {
  const runId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  let counter = 0;
  const nextBody = (): string =>
    JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `bench ${runId} ${++counter} say something short about caches` }] });
  return { runId, nextBody };
}

interface LoadOptions {
  origin: string;
  connections: number;
  durationS: number;
  /** Requests per second over all connections; unlimited when undefined. */
  overallRate?: number | undefined;
  /**
   * With overallRate: run one single-connection autocannon instance per connection, each at its share of the rate and
   * started 1/connections of a second after the previous one, so the requests are spread over each second.
   */
  staggered?: boolean;
  nextBody: () => string;
}

interface LoadRun {
  /** These four are summed over the instances of a staggered load. */
  sent: number;
  errors: number;
  timeouts: number;
  /** Mean of autocannon's per-second request counts. */
  requestsPerSecond: number;
  /** Seconds autocannon ran (the mean over instances). */
  durationS: number;
  /** autocannon's own latency histogram (whole ms); null for a staggered load, whose instances each have their own. */
  autocannonLatencyMs: AutocannonLatency | null;
  /** Every response's latency in ms, as autocannon measured it with process.hrtime (sub-µs resolution). */
  latenciesMs: Float64Array;
  /** performance.now() of every response, for the shape of the load over time. */
  completedAt: Float64Array;
  startedAt: number;
  responses: number;
  non2xx: number;
}

interface AutocannonLatency {
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** What every response reports, whichever autocannon instance it came from. */
interface ResponseRecorder {
  latencies: number[];
  completedAt: number[];
  non2xx: number;
}

/** Running autocannon instances, stopped on SIGINT or by the watchdog. */
const runningLoads = new Set<autocannon.Instance>();

function runInstance(options: autocannon.Options, recorder: ResponseRecorder): Promise<autocannon.Result> {
  return new Promise((resolve, reject) => {
    const instance = autocannon(options, (error: unknown, result: autocannon.Result) => {
      runningLoads.delete(instance);
      if (error) reject(error instanceof Error ? error : new Error(String(error)));
      else resolve(result);
    });
    runningLoads.add(instance);
    instance.on('response', (_client, statusCode, _bytes, responseTime) => {
      recorder.latencies.push(responseTime);
      recorder.completedAt.push(performance.now());
      if (statusCode < 200 || statusCode > 299) recorder.non2xx++;
    });
  });
}

function stopLoads(): void {
  for (const instance of runningLoads) instance.stop();
}

function autocannonOptions(options: LoadOptions, connections: number, overallRate: number | undefined): autocannon.Options {
  return {
    url: options.origin,
    connections,
    duration: options.durationS,
    ...(overallRate === undefined ? {} : { overallRate }),
    headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' },
    requests: [
      {
        method: 'POST',
        path: '/v1/chat/completions',
        setupRequest: (request) => {
          request.body = options.nextBody();
          return request;
        },
      },
    ],
  };
}

/** Shares `total` out as evenly as whole numbers allow, the larger shares first. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

async function runLoad(options: LoadOptions): Promise<LoadRun> {
  const recorder: ResponseRecorder = { latencies: [], completedAt: [], non2xx: 0 };
  const startedAt = performance.now();
  let results: autocannon.Result[];
  if (options.staggered === true && options.overallRate !== undefined) {
    const gapMs = 1_000 / options.connections;
    const rates = shares(options.overallRate, options.connections).filter((rate) => rate > 0);
    results = await Promise.all(
      rates.map(async (rate, i) => {
        await sleep(i * gapMs);
        return runInstance(autocannonOptions(options, 1, rate), recorder);
      }),
    );
  } else {
    results = [await runInstance(autocannonOptions(options, options.connections, options.overallRate), recorder)];
  }
  const first = results[0];
  if (first === undefined) throw new Error('no autocannon instance ran');
  const sum = (pick: (result: autocannon.Result) => number): number => results.reduce((total, result) => total + pick(result), 0);
  return {
    sent: sum((result) => result.requests.sent),
    errors: sum((result) => result.errors),
    timeouts: sum((result) => result.timeouts),
    durationS: sum((result) => result.duration) / results.length,
    requestsPerSecond: sum((result) => result.requests.average),
    autocannonLatencyMs: results.length === 1 ? { p50: first.latency.p50, p90: first.latency.p90, p99: first.latency.p99, max: first.latency.max } : null,
    latenciesMs: Float64Array.from(recorder.latencies),
    completedAt: Float64Array.from(recorder.completedAt),
    startedAt,
    responses: recorder.latencies.length,
    non2xx: recorder.non2xx,
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// CPU time per process, to compare costs per request on a machine too noisy for absolute throughput

const CLOCK_TICKS_PER_S = Number.parseInt(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout ?? '', 10) || 100;

/** User + system CPU seconds a child has used so far (Linux /proc); NaN where that is not available. */
function childCpuSeconds(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name start at field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

interface CpuSnapshot {
  client: number;
  mock: number;
  recall: number;
  bare: number;
}

function cpuSnapshot({ mock, recall, bare }: Processes): CpuSnapshot {
  const own = process.cpuUsage();
  return {
    client: (own.user + own.system) / 1e6,
    mock: childCpuSeconds(mock.process),
    recall: childCpuSeconds(recall.process),
    bare: bare === undefined ? Number.NaN : childCpuSeconds(bare.process),
  };
}

/** CPU µs per completed request for each process between two snapshots. */
function cpuPerRequest(before: CpuSnapshot, after: CpuSnapshot, requests: number): CpuSnapshot {
  const perRequest = (key: keyof CpuSnapshot): number => ((after[key] - before[key]) * 1e6) / Math.max(1, requests);
  return { client: perRequest('client'), mock: perRequest('mock'), recall: perRequest('recall'), bare: perRequest('bare') };
}

// ---------------------------------------------------------------------------------------------------------------------
// Statistics

interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

function summariseLatency(latenciesMs: Float64Array): LatencySummary {
  const sorted = latenciesMs.slice().sort();
  const mean = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
  return { mean, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/**
 * Median, over the whole seconds of a run, of the time between the first and the last response of that second.
 * Close to 1000 ms when requests are spread over the second; small when they come in one burst.
 */
function medianBusyMsPerSecond(run: LoadRun): number {
  const firstLast = new Map<number, { first: number; last: number }>();
  for (const at of run.completedAt) {
    const second = Math.floor((at - run.startedAt) / 1_000);
    const window = firstLast.get(second);
    if (window === undefined) firstLast.set(second, { first: at, last: at });
    else window.last = at;
  }
  const wholeSeconds = Math.floor(run.durationS);
  const spans = Float64Array.from([...firstLast].filter(([second]) => second < wholeSeconds).map(([, w]) => w.last - w.first)).sort();
  return percentile(spans, 50);
}

/** Straight to the mock, through loadtest/bare-proxy.ts, or through Recall. */
type Target = 'direct' | 'bare' | 'recall';

interface Measurement {
  target: Target;
  /** Mean of autocannon's per-second request counts. */
  requestsPerSecond: number;
  /** Responses (any status) divided by the run's duration. */
  achievedRate: number;
  responses: number;
  sent: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyMs: LatencySummary;
  /** autocannon's own histogram: whole milliseconds (and, at a fixed rate, its coordinated-omission correction). */
  autocannonLatencyMs: AutocannonLatency | null;
  busyMsPerSecond: number;
  /** CPU µs per completed request of the benchmark process (autocannon), the mock, Recall and the bare proxy (~0 when idle). */
  cpuUsPerRequest: CpuSnapshot;
  upstream: UpstreamCount;
  countCheck: string | null;
}

/**
 * Each request autocannon completed must have reached the mock exactly once; requests cut off when autocannon stops
 * (at most one per connection) may have reached it too.
 */
function checkCounts(target: string, scenario: string, run: LoadRun, upstream: UpstreamCount, connections: number): string | null {
  const gap = upstream.chat - run.responses;
  if (gap >= 0 && gap <= connections) return null;
  return `${scenario}, ${target}: the upstream saw ${upstream.chat} chat requests but autocannon completed ${run.responses} (expected between ${run.responses} and ${run.responses + connections})`;
}

interface Processes {
  mock: Mock;
  recall: Recall;
  /** Not started under --profile. */
  bare?: Mock | undefined;
}

async function measure(
  target: Target,
  scenario: string,
  processes: Processes,
  settings: BenchSettings,
  load: Omit<LoadOptions, 'origin' | 'durationS'>,
): Promise<Measurement> {
  process.stderr.write(`  ${scenario}, ${target}: warm-up ${settings.warmupS} s, then ${settings.durationS} s\n`);
  const { mock } = processes;
  const origin = { direct: mock.origin, bare: processes.bare?.origin, recall: processes.recall.origin }[target];
  if (origin === undefined) throw new Error(`no ${target} process to measure`);
  await runLoad({ ...load, origin, durationS: settings.warmupS });
  await resetMock(mock);
  const cpuBefore = cpuSnapshot(processes);
  const run = await runLoad({ ...load, origin, durationS: settings.durationS });
  const cpuAfter = cpuSnapshot(processes);
  const upstream = await upstreamCount(mock);
  return {
    target,
    requestsPerSecond: run.requestsPerSecond,
    achievedRate: run.responses / run.durationS,
    responses: run.responses,
    sent: run.sent,
    non2xx: run.non2xx,
    errors: run.errors,
    timeouts: run.timeouts,
    latencyMs: summariseLatency(run.latenciesMs),
    autocannonLatencyMs: run.autocannonLatencyMs,
    busyMsPerSecond: medianBusyMsPerSecond(run),
    cpuUsPerRequest: cpuPerRequest(cpuBefore, cpuAfter, run.responses),
    upstream,
    countCheck: checkCounts(target, scenario, run, upstream, load.connections),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// One pass: all scenarios, direct, through the bare proxy (A and B′) and through Recall, at one mock latency

interface SaturationResult {
  direct: Measurement;
  bare: Measurement;
  recall: Measurement;
  /** Recall / direct. Target: ≥ 0.5. */
  throughputRatio: number;
  /** Bare proxy / direct: what any Node proxy reaches on this machine. */
  bareRatio: number;
  /** Recall / bare proxy. */
  recallToBareRatio: number;
  met: boolean;
}

interface FixedRateResult {
  direct: Measurement;
  recall: Measurement;
  addedP50Ms: number;
  addedP99Ms: number;
  /** Targets: added p50 ≤ 1 ms, added p99 ≤ 3 ms. */
  met: { p50: boolean; p99: boolean };
  /** Only in B′: the bare proxy under the same load, and what it adds over direct. */
  bare?: { measurement: Measurement; addedP50Ms: number; addedP99Ms: number };
}

interface PassResult {
  mockLatencyMs: number;
  /** Scenario A. */
  saturation: SaturationResult;
  /** Scenario B: autocannon's `overallRate`, whose connections all send their share at the start of each second. */
  fixedRate: FixedRateResult;
  /** Scenario B′: the same rate and connections, spread over the second (see LoadOptions.staggered). */
  fixedRateSpread: FixedRateResult;
}

function saturationResult(direct: Measurement, bare: Measurement, recall: Measurement): SaturationResult {
  const throughputRatio = recall.requestsPerSecond / direct.requestsPerSecond;
  return {
    direct,
    bare,
    recall,
    throughputRatio,
    bareRatio: bare.requestsPerSecond / direct.requestsPerSecond,
    recallToBareRatio: recall.requestsPerSecond / bare.requestsPerSecond,
    met: throughputRatio >= 0.5,
  };
}

function fixedRateResult(direct: Measurement, recall: Measurement, bare?: Measurement): FixedRateResult {
  const addedP50Ms = recall.latencyMs.p50 - direct.latencyMs.p50;
  const addedP99Ms = recall.latencyMs.p99 - direct.latencyMs.p99;
  return {
    direct,
    recall,
    addedP50Ms,
    addedP99Ms,
    met: { p50: addedP50Ms <= 1, p99: addedP99Ms <= 3 },
    ...(bare === undefined
      ? {}
      : { bare: { measurement: bare, addedP50Ms: bare.latencyMs.p50 - direct.latencyMs.p50, addedP99Ms: bare.latencyMs.p99 - direct.latencyMs.p99 } }),
  };
}

async function runPass(settings: BenchSettings, mockLatencyMs: number, nextBody: () => string): Promise<PassResult> {
  process.stderr.write(`mock latency ${mockLatencyMs} ms\n`);
  const mock = await startMock(mockLatencyMs);
  let bare: Mock | undefined;
  let recall: Recall | undefined;
  try {
    bare = await startBareProxy(mock);
    recall = await startRecall(`${mock.origin}/v1`, []);
    const processes: Processes = { mock, bare, recall };
    const m = (target: Target, scenario: string, load: Omit<LoadOptions, 'origin' | 'durationS'>): Promise<Measurement> =>
      measure(target, scenario, processes, settings, load);
    const { connections, rate } = settings;
    const saturation = { connections, nextBody };
    const burst = { connections, overallRate: rate, nextBody };
    const spread = { connections, overallRate: rate, staggered: true, nextBody };
    const aDirect = await m('direct', 'saturation', saturation);
    const aBare = await m('bare', 'saturation', saturation);
    const aRecall = await m('recall', 'saturation', saturation);
    const bDirect = await m('direct', `${rate} req/s`, burst);
    const bRecall = await m('recall', `${rate} req/s`, burst);
    const cDirect = await m('direct', `${rate} req/s spread`, spread);
    const cBare = await m('bare', `${rate} req/s spread`, spread);
    const cRecall = await m('recall', `${rate} req/s spread`, spread);
    return {
      mockLatencyMs,
      saturation: saturationResult(aDirect, aBare, aRecall),
      fixedRate: fixedRateResult(bDirect, bRecall),
      fixedRateSpread: fixedRateResult(cDirect, cRecall, cBare),
    };
  } finally {
    if (recall !== undefined) await stopChild(recall.process);
    if (bare !== undefined) await stopChild(bare.process);
    await stopChild(mock.process);
  }
}

function warningsOf(pass: PassResult): string[] {
  const scenarios: [string, Measurement[]][] = [
    ['saturation', [pass.saturation.direct, pass.saturation.bare, pass.saturation.recall]],
    ['fixed rate', [pass.fixedRate.direct, pass.fixedRate.recall]],
    ['fixed rate spread', [pass.fixedRateSpread.direct, ...(pass.fixedRateSpread.bare ? [pass.fixedRateSpread.bare.measurement] : []), pass.fixedRateSpread.recall]],
  ];
  const warnings: string[] = [];
  for (const [scenario, measurements] of scenarios) {
    for (const m of measurements) {
      const where = `mock ${pass.mockLatencyMs} ms, ${scenario}, ${m.target}`;
      if (m.non2xx > 0) warnings.push(`${where}: ${m.non2xx} non-2xx responses`);
      if (m.errors > 0 || m.timeouts > 0) warnings.push(`${where}: ${m.errors} errors, ${m.timeouts} timeouts`);
      if (m.countCheck !== null) warnings.push(`mock ${pass.mockLatencyMs} ms, ${m.countCheck}`);
    }
  }
  return warnings;
}

// ---------------------------------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  node: string;
  nproc: number;
  cpu: string;
  platform: string;
  command: string;
  runId: string;
  settings: Omit<BenchSettings, 'profile'> & { recallLogLevel: string; latencyResolution: string };
  passes: PassResult[];
  warnings: string[];
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : 'n/a';
}

function signedMs(value: number): string {
  return `${value >= 0 ? '+' : ''}${ms(value)}`;
}

function metOrNot(met: boolean): string {
  return met ? '**met**' : '**not met**';
}

function saturationMarkdown(a: SaturationResult, settings: BenchSettings): string[] {
  const cpu = (us: number): string => (Number.isFinite(us) ? us.toFixed(0) : 'n/a');
  const proxyCpu = (m: Measurement): string => (m.target === 'direct' ? '-' : cpu(m.target === 'bare' ? m.cpuUsPerRequest.bare : m.cpuUsPerRequest.recall));
  const row = (label: string, m: Measurement): string =>
    `| ${label} | ${m.requestsPerSecond.toFixed(0)} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p99)} | ${m.non2xx} | ${m.errors} | ${m.responses} | ${m.upstream.chat} | ` +
    `${cpu(m.cpuUsPerRequest.client)} / ${cpu(m.cpuUsPerRequest.mock)} / ${proxyCpu(m)} |`;
  return [
    `Scenario A: saturation, ${settings.connections} connections, ${settings.durationS} s`,
    '',
    '| target | req/s (mean) | p50 ms | p99 ms | non-2xx | errors | completed | upstream saw | CPU µs/request: autocannon / mock / proxy |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('direct (mock)', a.direct),
    row('through bare proxy', a.bare),
    row('through Recall', a.recall),
    '',
    `Throughput through Recall / direct: **${a.throughputRatio.toFixed(2)}** (target ≥ 0.5: ${metOrNot(a.met)}); ` +
      `bare proxy / direct: **${a.bareRatio.toFixed(2)}**; Recall / bare proxy: **${a.recallToBareRatio.toFixed(2)}**`,
  ];
}

function fixedRateMarkdown(title: string, b: FixedRateResult): string[] {
  const row = (label: string, m: Measurement): string =>
    `| ${label} | ${m.achievedRate.toFixed(0)} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p90)} | ${ms(m.latencyMs.p99)} | ${ms(m.latencyMs.max)} | ` +
    `${m.busyMsPerSecond.toFixed(0)} | ${m.non2xx} | ${m.errors} | ${m.responses} | ${m.upstream.chat} |`;
  return [
    title,
    '',
    '| target | achieved req/s | p50 ms | p90 ms | p99 ms | max ms | busy ms/s | non-2xx | errors | completed | upstream saw |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row('direct (mock)', b.direct),
    ...(b.bare === undefined ? [] : [row('through bare proxy', b.bare.measurement)]),
    row('through Recall', b.recall),
    '',
    `Added latency (Recall − direct): p50 **${signedMs(b.addedP50Ms)} ms** (target ≤ 1 ms: ${metOrNot(b.met.p50)}), ` +
      `p99 **${signedMs(b.addedP99Ms)} ms** (target ≤ 3 ms: ${metOrNot(b.met.p99)})` +
      (b.bare === undefined ? '' : `; bare proxy − direct: p50 ${signedMs(b.bare.addedP50Ms)} ms, p99 ${signedMs(b.bare.addedP99Ms)} ms`),
  ];
}

function passMarkdown(pass: PassResult, settings: BenchSettings): string {
  const { connections, rate, durationS } = settings;
  return [
    `### Mock upstream latency ${pass.mockLatencyMs} ms`,
    '',
    ...saturationMarkdown(pass.saturation, settings),
    '',
    ...fixedRateMarkdown(`Scenario B: fixed rate ${rate} req/s (autocannon \`overallRate\`), ${connections} connections, ${durationS} s`, pass.fixedRate),
    '',
    ...fixedRateMarkdown(
      `Scenario B′: ${rate} req/s spread over each second (${connections} single-connection autocannon instances at ${rate / connections} req/s, started ${(1_000 / connections).toFixed(0)} ms apart), ${durationS} s`,
      pass.fixedRateSpread,
    ),
    '',
    '"busy ms/s": median over the seconds of the time between the first and the last response of that second; ' +
      "autocannon's `overallRate` lets every connection send its share of a second back to back at the start of it, so scenario B is a burst of " +
      `${connections} concurrent requests each second, not an even ${rate} req/s.`,
  ].join('\n');
}

function reportMarkdown(report: Report, settings: BenchSettings): string {
  const lines = [
    `## Recall forwarding benchmark, ${report.date}`,
    '',
    `- machine: ${report.nproc} CPUs (\`nproc\`), ${report.cpu}, ${report.platform}; node ${report.node}`,
    `- command: \`${report.command}\``,
    `- settings: warm-up ${settings.warmupS} s then ${settings.durationS} s per measurement, ${settings.connections} connections, ` +
      `fixed rate ${settings.rate} req/s, Recall defaults (log level ${report.settings.recallLogLevel}, stdout to /dev/null), every prompt distinct (run ${report.runId})`,
    `- latency: ${report.settings.latencyResolution}`,
    '',
    ...report.passes.flatMap((pass) => [passMarkdown(pass, settings), '']),
  ];
  if (report.warnings.length > 0) lines.push('**Warnings**', '', ...report.warnings.map((w) => `- ${w}`), '');
  return lines.join('\n');
}

function nproc(): number {
  const result = spawnSync('nproc', { encoding: 'utf8' });
  const value = Number.parseInt(result.stdout ?? '', 10);
  return Number.isFinite(value) ? value : availableParallelism();
}

function timestampForFile(date: Date): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

// ---------------------------------------------------------------------------------------------------------------------
// --profile: saturation through Recall under `node --cpu-prof`, then the top self-time functions

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  hitCount?: number;
}

interface CpuProfile {
  nodes: ProfileNode[];
  samples: number[];
  timeDeltas: number[];
}

/** Where a function lives: a package under node_modules, node's internals, a file of Recall's, or a V8 pseudo-frame. */
function ownerOf(url: string, functionName: string): string {
  if (url === '') return functionName.startsWith('(') ? functionName : '(native)';
  if (url.startsWith('node:')) return 'node internals';
  const pkg = /node_modules\/((?:@[^/]+\/)?[^/]+)/.exec(url);
  return pkg?.[1] ?? url;
}

function summariseProfile(profile: CpuProfile, top: number): string {
  const selfUs = new Map<number, number>();
  profile.samples.forEach((nodeId, i) => selfUs.set(nodeId, (selfUs.get(nodeId) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((sum, us) => sum + us, 0);
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\//, '').replace(ROOT, '');
    const key = `${functionName || '(anonymous)'}  ${file === '' ? '' : `${file}:${lineNumber + 1}`}`;
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const owner = ownerOf(file, functionName);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + us);
  }
  const share = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const ranked = (map: Map<string, number>, n: number): string[] =>
    [...map].sort((x, y) => y[1] - x[1]).slice(0, n).map(([name, us]) => `${share(us)}  ${(us / 1_000).toFixed(0).padStart(6)} ms  ${name}`);
  return [
    `profile: ${(total / 1_000).toFixed(0)} ms of samples`,
    '',
    'self time by owner:',
    ...ranked(byOwner, 12),
    '',
    `top ${top} functions by self time:`,
    ...ranked(byFunction, top),
  ].join('\n');
}

async function runProfile(settings: BenchSettings, nextBody: () => string): Promise<void> {
  const dir = join(RESULTS_DIR, `profile-${timestampForFile(new Date())}`);
  mkdirSync(dir, { recursive: true });
  const mock = await startMock(0);
  try {
    const recall = await startRecall(`${mock.origin}/v1`, ['--cpu-prof', '--cpu-prof-dir', dir]);
    try {
      const m = await measure('recall', 'saturation (profiled)', { mock, recall }, settings, { connections: settings.connections, nextBody });
      console.log(`through Recall under --cpu-prof: ${m.requestsPerSecond.toFixed(0)} req/s, p50 ${ms(m.latencyMs.p50)} ms, p99 ${ms(m.latencyMs.p99)} ms, non-2xx ${m.non2xx}, errors ${m.errors}`);
    } finally {
      // SIGTERM makes Recall drain and exit 0, which is when node writes the profile.
      await stopChild(recall.process);
    }
  } finally {
    await stopChild(mock.process);
  }
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no .cpuprofile written to ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  console.log(`\n${join(dir, file)}\n`);
  console.log(summariseProfile(profile, 25));
}

// ---------------------------------------------------------------------------------------------------------------------
// Main

async function runBenchmark(argv: string[]): Promise<void> {
  const settings = readSettings(argv);
  const watchdog = setTimeout(() => {
    process.stderr.write(`bench-forward: still running after ${timeBudgetMs(settings) / 1_000} s; stopping\n`);
    stopLoads();
    killChildrenNow();
    process.exit(1);
  }, timeBudgetMs(settings));
  try {
    buildIfStale();
    const { runId, nextBody } = distinctPrompts();
    if (settings.profile) {
      await runProfile(settings, nextBody);
      return;
    }
    const started = new Date();
    const passes: PassResult[] = [];
    for (const mockLatencyMs of settings.mockLatenciesMs) passes.push(await runPass(settings, mockLatencyMs, nextBody));
    const report: Report = {
      date: started.toISOString(),
      node: process.version,
      nproc: nproc(),
      cpu: cpus()[0]?.model ?? 'unknown CPU',
      platform: `${platform()} ${arch()}`,
      command: commandLine(argv),
      runId,
      settings: {
        durationS: settings.durationS,
        warmupS: settings.warmupS,
        connections: settings.connections,
        rate: settings.rate,
        mockLatenciesMs: settings.mockLatenciesMs,
        recallLogLevel: 'info (default)',
        latencyResolution: 'per response from the autocannon `response` event (process.hrtime, sub-µs), shown to 0.01 ms; autocannon\'s own histogram (whole ms) is kept in the JSON',
      },
      passes,
      warnings: passes.flatMap(warningsOf),
    };
    mkdirSync(RESULTS_DIR, { recursive: true });
    const file = join(RESULTS_DIR, `forward-${timestampForFile(started)}.json`);
    writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
    console.log(reportMarkdown(report, settings));
    console.log(`JSON: ${file}`);
    for (const warning of report.warnings) process.stderr.write(`WARNING: ${warning}\n`);
  } finally {
    clearTimeout(watchdog);
  }
}

function onSignal(signal: NodeJS.Signals): void {
  process.stderr.write(`bench-forward: ${signal}; stopping the mock and Recall\n`);
  stopLoads();
  killChildrenNow();
  process.exit(130);
}

process.once('SIGINT', onSignal);
process.once('SIGTERM', onSignal);
process.once('exit', killChildrenNow);

runBenchmark(process.argv.slice(2)).catch((error: unknown) => {
  process.stderr.write(`bench-forward: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
  stopLoads();
  killChildrenNow();
  process.exitCode = 1;
});
