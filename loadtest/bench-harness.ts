// The parts a Recall load benchmark is built from: child processes on loopback that always die with the run, autocannon
// load with per-response hrtime latencies, CPU time per process from /proc, percentiles, and a `--cpu-prof` summary;
// the servers and requests several benchmarks share (the ceiling, priming a hit, distinct prompts, a storm). Every
// loadtest/bench*.ts script is built from it; loadtest/bench.ts runs them all side by side.

import autocannon from 'autocannon';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { mkdirSync, mkdtempSync, readdirSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, loadavg, platform, tmpdir } from 'node:os';
import { createServer, type AddressInfo } from 'node:net';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';

export const ROOT = fileURLToPath(new URL('..', import.meta.url));
export const RESULTS_DIR = join(ROOT, 'loadtest', 'results');
export const STARTUP_TIMEOUT_MS = 20_000;
const CHILD_STOP_TIMEOUT_MS = 15_000;

// ---------------------------------------------------------------------------------------------------------------------
// Command line

export function positiveNumber(name: string, raw: string | undefined, fallback: number, max: number): number {
  if (raw === undefined) return fallback;
  const value = Number(raw);
  if (!Number.isFinite(value) || value <= 0 || value > max) throw new RangeError(`--${name} must be a number in (0, ${max}], got '${raw}'`);
  return value;
}

/** The settings every benchmark takes from its command line; `--profile` makes it a profiled run instead. */
export interface CommonBenchSettings {
  durationS: number;
  warmupS: number;
  connections: number;
  /** Requests per second of the fixed-rate scenario. */
  rate: number;
  profile: boolean;
}

/** The raw flags: the common ones, and the benchmark's own extra flags, which all take a value. */
export type BenchFlags<Extra extends string> = {
  duration?: string | undefined;
  warmup?: string | undefined;
  connections?: string | undefined;
  rate?: string | undefined;
  profile?: boolean | undefined;
} & Partial<Record<Extra, string>>;

/** Parses `--duration --warmup --connections --rate --profile` plus `extraFlags`; throws on any other flag. */
export function parseBenchFlags<Extra extends string>(argv: string[], extraFlags: readonly Extra[]): BenchFlags<Extra> {
  const extra = Object.fromEntries(extraFlags.map((name) => [name, { type: 'string' as const }]));
  const { values } = parseArgs({
    args: argv,
    options: {
      duration: { type: 'string' },
      warmup: { type: 'string' },
      connections: { type: 'string' },
      rate: { type: 'string' },
      ...extra,
      profile: { type: 'boolean' },
    },
  });
  return values as BenchFlags<Extra>;
}

/** Validates the common flags: 10 s (≤ 60) measured after 2 s (≤ 30) of warm-up, 50 connections (≤ 1000), `defaultRate` req/s. */
export function commonBenchSettings(flags: BenchFlags<never>, defaultRate: number): CommonBenchSettings {
  return {
    durationS: positiveNumber('duration', flags.duration, 10, 60),
    warmupS: positiveNumber('warmup', flags.warmup, 2, 30),
    connections: Math.round(positiveNumber('connections', flags.connections, 50, 1_000)),
    rate: Math.round(positiveNumber('rate', flags.rate, defaultRate, 100_000)),
    profile: flags.profile === true,
  };
}

/** How the run was started, for the report: `npm run <script> -- …` when npm ran it, `npx tsx <file> …` otherwise. */
export function commandLine(npmScript: string, file: string, argv: string[]): string {
  const args = argv.join(' ');
  if (process.env.npm_lifecycle_event === npmScript) return `npm run ${npmScript}${args === '' ? '' : ` -- ${args}`}`;
  return `npx tsx ${file}${args === '' ? '' : ` ${args}`}`;
}

// ---------------------------------------------------------------------------------------------------------------------
// The benchmark process: a watchdog, SIGINT and SIGTERM, and errors all stop the load and every child

function stopAtOnce(loads: LoadGenerator, children: ChildProcesses): void {
  loads.stopAll();
  children.killNow();
}

/** Runs `work`; past `budgetMs` the watchdog reports `<name>: still running…`, stops everything and exits with 1. */
export async function withWatchdog<T>(name: string, budgetMs: number, loads: LoadGenerator, children: ChildProcesses, work: () => Promise<T>): Promise<T> {
  const watchdog = setTimeout(() => {
    process.stderr.write(`${name}: still running after ${budgetMs / 1_000} s; stopping\n`);
    stopAtOnce(loads, children);
    process.exit(1);
  }, budgetMs);
  try {
    return await work();
  } finally {
    clearTimeout(watchdog);
  }
}

/**
 * Runs `main` as the whole process `name`: SIGINT or SIGTERM reports `<name>: <signal>; <onSignal>`, stops everything
 * and exits with 130; no child outlives the process; an error is printed with its stack, stops everything and sets
 * exit code 1.
 */
export function runBenchmarkProcess(name: string, onSignal: string, loads: LoadGenerator, children: ChildProcesses, main: () => Promise<void>): void {
  const stopOnSignal = (signal: NodeJS.Signals): void => {
    process.stderr.write(`${name}: ${signal}; ${onSignal}\n`);
    stopAtOnce(loads, children);
    process.exit(130);
  };
  process.once('SIGINT', stopOnSignal);
  process.once('SIGTERM', stopOnSignal);
  process.once('exit', () => children.killNow());
  main().catch((error: unknown) => {
    process.stderr.write(`${name}: ${error instanceof Error ? (error.stack ?? error.message) : String(error)}\n`);
    stopAtOnce(loads, children);
    process.exitCode = 1;
  });
}

// ---------------------------------------------------------------------------------------------------------------------
// Child processes, always stopped on exit, on error and on SIGINT

/** Keeps the last few KB a child wrote to a pipe, for error messages. */
export function tail(stream: NodeJS.ReadableStream | null): () => string {
  let text = '';
  stream?.on('data', (chunk: Buffer) => {
    text = (text + chunk.toString('utf8')).slice(-4_000);
  });
  return () => text.trim();
}

/** A child serving HTTP (or Redis) on loopback. */
export interface Server {
  name: string;
  process: ChildProcess;
  /** http://127.0.0.1:PORT (redis://127.0.0.1:PORT for Redis). */
  origin: string;
  stderr: () => string;
}

/** Every child of a benchmark run; whatever happens, none outlives the run. */
export class ChildProcesses {
  private readonly running = new Set<ChildProcess>();
  /** Children started as the leader of their own process group (npx and what it runs), signalled as a group. */
  private readonly groups = new Set<ChildProcess>();

  /** `group`: the child leads a process group of its own, and stop and killNow signal the whole group. */
  spawn(command: string, args: string[], options: SpawnOptions, group = false): ChildProcess {
    const child = spawn(command, args, group ? { ...options, detached: true } : options);
    this.running.add(child);
    if (group) this.groups.add(child);
    child.once('exit', () => {
      this.running.delete(child);
      this.groups.delete(child);
    });
    return child;
  }

  async stop(child: ChildProcess, signal: NodeJS.Signals = 'SIGTERM'): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    this.signal(child, signal);
    const timer = setTimeout(() => this.signal(child, 'SIGKILL'), CHILD_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  killNow(): void {
    for (const child of this.running) this.signal(child, 'SIGKILL');
  }

  private signal(child: ChildProcess, signal: NodeJS.Signals): void {
    try {
      if (this.groups.has(child) && child.pid !== undefined) process.kill(-child.pid, signal);
      else child.kill(signal);
    } catch {
      // already gone
    }
  }
}

/** A port that was free a moment ago; Recall and redis-server only report theirs in their logs. */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const server = createServer();
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => {
      const { port } = server.address() as AddressInfo;
      server.close(() => resolve(port));
    });
  });
}

/** Resolves with the first match of `pattern` in the child's stdout; rejects if it exits or stays silent too long. */
function waitForLine(name: string, child: ChildProcess, stderr: () => string, pattern: RegExp): Promise<RegExpExecArray> {
  return new Promise((resolve, reject) => {
    let stdout = '';
    const timer = setTimeout(() => reject(new Error(`${name} did not start within ${STARTUP_TIMEOUT_MS} ms: ${stderr() || stdout.slice(-2_000)}`)), STARTUP_TIMEOUT_MS);
    child.once('exit', (code, signal) => {
      clearTimeout(timer);
      reject(new Error(`${name} exited early (${code ?? signal}): ${stderr() || stdout.slice(-2_000)}`));
    });
    child.stdout?.on('data', (chunk: Buffer) => {
      stdout += chunk.toString('utf8');
      const match = pattern.exec(stdout);
      if (match === null) return;
      clearTimeout(timer);
      child.stdout?.removeAllListeners('data');
      child.stdout?.resume();
      resolve(match);
    });
  });
}

/** Starts a loadtest/*.ts script under tsx and waits for the `listening on http://127.0.0.1:PORT` line it prints. */
export async function startScript(children: ChildProcesses, name: string, script: string, args: string[], nodeFlags: string[] = []): Promise<Server> {
  const argv = [...nodeFlags, '--import', 'tsx', join(ROOT, 'loadtest', script), ...args];
  const child = children.spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = tail(child.stderr);
  const match = await waitForLine(name, child, stderr, /listening on (http:\/\/127\.0\.0\.1:\d+)/);
  return { name, process: child, origin: match[1] as string, stderr };
}

/** A throwaway redis-server on loopback: no snapshots, no AOF, never the default port. */
export async function startRedis(children: ChildProcesses): Promise<Server> {
  const port = await freePort();
  const args = ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'];
  const child = children.spawn('redis-server', args, { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] });
  const stderr = tail(child.stderr);
  await waitForLine('redis-server', child, stderr, /Ready to accept connections/);
  return { name: 'redis-server', process: child, origin: `redis://127.0.0.1:${port}`, stderr };
}

/** Calls one of the mock upstream's /mock/* control routes and returns its JSON answer. */
export async function mockControl(mock: Server, method: 'GET' | 'POST', path: string): Promise<unknown> {
  const response = await fetch(`${mock.origin}${path}`, { method, signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`mock ${method} ${path} answered ${response.status}`);
  return response.json();
}

export interface RecallOptions {
  name: string;
  upstreamBaseUrl: string;
  /** RECALL_* settings on top of host, port and upstream (e.g. RECALL_REDIS_URL). */
  env?: Record<string, string>;
  /** A YAML config file's text, written to a throwaway file named by RECALL_CONFIG and removed once Recall is up. */
  configYaml?: string;
  /** Flags for node itself, e.g. --cpu-prof. */
  nodeFlags?: string[];
  /** How long it may take to answer /healthz; default STARTUP_TIMEOUT_MS (a large cache snapshot takes longer to load). */
  startupTimeoutMs?: number;
}

/** `node dist/main.js` with default settings (log level info included) apart from `env`, its stdout going to /dev/null. */
export async function startRecall(children: ChildProcesses, options: RecallOptions): Promise<Server> {
  const port = await freePort();
  const configDir = options.configYaml === undefined ? undefined : mkdtempSync(join(tmpdir(), 'recall-bench-config-'));
  // What a user gets by default: no config file and no RECALL_* setting (log level, upstream key, Redis…) from the caller's shell.
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('RECALL_'));
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(inherited),
    RECALL_HOST: '127.0.0.1',
    RECALL_PORT: String(port),
    RECALL_UPSTREAM_URL: options.upstreamBaseUrl,
    ...options.env,
  };
  try {
    if (configDir !== undefined) {
      env.RECALL_CONFIG = join(configDir, 'recall.yaml');
      writeFileSync(env.RECALL_CONFIG, options.configYaml ?? '');
    }
    const child = children.spawn(process.execPath, [...(options.nodeFlags ?? []), join(ROOT, 'dist', 'main.js')], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
    const recall: Server = { name: options.name, process: child, origin: `http://127.0.0.1:${port}`, stderr: tail(child.stderr) };
    await waitForOk(recall, '/healthz', options.startupTimeoutMs ?? STARTUP_TIMEOUT_MS);
    return recall;
  } finally {
    if (configDir !== undefined) rmSync(configDir, { recursive: true, force: true });
  }
}

/** Polls `path` until the server answers 2xx; fails when the process exits first or `timeoutMs` passes. */
export async function waitForOk(server: Server, path: string, timeoutMs: number): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  while (Date.now() < deadline) {
    if (server.process.exitCode !== null) throw new Error(`${server.name} exited early (${server.process.exitCode}): ${server.stderr()}`);
    try {
      const response = await fetch(`${server.origin}${path}`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${server.name} did not answer ${path} within ${timeoutMs} ms: ${server.stderr()}`);
}

export function buildIfStale(): void {
  const result = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-if-stale.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`build failed (exit ${result.status ?? result.signal})`);
}

// ---------------------------------------------------------------------------------------------------------------------
// What several benchmarks share: the mock's counters, the ceiling, a primed hit, distinct and near-repeat requests

export const CHAT_ROUTE = 'POST /v1/chat/completions';
export const CACHE_HEADER = 'x-recall-cache';
/** The client key of every benchmark request; it selects the tenant partition Recall caches under. */
export const BENCH_API_KEY = 'sk-bench';
export const BENCH_HEADERS = { 'content-type': 'application/json', authorization: `Bearer ${BENCH_API_KEY}` } as const;

export interface MockStats {
  byRoute: Record<string, number>;
  aborted: number;
  peakInProgress: number;
}

/** The mock upstream's counters (GET /mock/stats). */
export async function mockStats(mock: Server): Promise<MockStats> {
  const stats = (await mockControl(mock, 'GET', '/mock/stats')) as Partial<MockStats>;
  return { byRoute: stats.byRoute ?? {}, aborted: stats.aborted ?? 0, peakInProgress: stats.peakInProgress ?? 0 };
}

/** Calls of `route` (e.g. CHAT_ROUTE) the mock has received since its last reset. */
export async function mockRouteCount(mock: Server, route: string): Promise<number> {
  return (await mockStats(mock)).byRoute[route] ?? 0;
}

/** A chat completion request with one user message, as JSON. */
export function chatBody(content: string, extra: Record<string, unknown> = {}): string {
  return JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content }], ...extra });
}

export interface Priming {
  /** x-recall-cache of each call until the first HIT; a fresh Recall gives exactly [MISS, HIT]. */
  outcomes: string[];
  /** The hit's body, byte for byte. */
  body: Buffer;
}

/** Sends `body` until Recall answers it from its cache (the second call should already be a HIT). */
export async function primeHit(recall: Server, body: string): Promise<Priming> {
  const outcomes: string[] = [];
  for (let attempt = 0; attempt < 20; attempt++) {
    const response = await fetch(`${recall.origin}/v1/chat/completions`, { method: 'POST', headers: BENCH_HEADERS, body, signal: AbortSignal.timeout(5_000) });
    const answer = Buffer.from(await response.arrayBuffer());
    if (response.status !== 200) throw new Error(`${recall.name} answered the benchmark request with ${response.status}: ${answer.toString('utf8').slice(0, 500)}`);
    const outcome = response.headers.get(CACHE_HEADER) ?? ABSENT;
    outcomes.push(outcome);
    if (outcome === 'HIT') return { outcomes, body: answer };
    await sleep(100);
  }
  throw new Error(`${recall.name} never answered the benchmark request from its cache: ${outcomes.join(', ')}`);
}

/** loadtest/ceiling-server.ts answering every chat completion with `answer`; it reads the bytes from a file that is gone once it listens. */
export async function startCeiling(children: ChildProcesses, answer: Buffer, nodeFlags: string[] = []): Promise<Server> {
  const dir = mkdtempSync(join(tmpdir(), 'recall-bench-ceiling-'));
  try {
    const bodyFile = join(dir, 'answer.json');
    writeFileSync(bodyFile, answer);
    return await startScript(children, 'ceiling', 'ceiling-server.ts', ['--port', '0', '--body-file', bodyFile], nodeFlags);
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * Request bodies that are all different (`make` gets the run's id and a counter), so that no cache can answer one and
 * no two coalesce.
 */
export function distinctBodies(make: (runId: string, n: number) => string): { runId: string; nextBody: () => string } {
  const runId = `${Date.now().toString(36)}-${randomBytes(4).toString('hex')}`;
  let counter = 0;
  return { runId, nextBody: () => make(runId, ++counter) };
}

/** Chat completions with a prompt of their own each: every one a miss. */
export function distinctPrompts(): { runId: string; nextBody: () => string } {
  return distinctBodies((runId, n) => chatBody(`bench ${runId} ${n} say something short about caches`));
}

/** Single-input embeddings requests, every input distinct: every one a miss. */
export function distinctEmbeddingInputs(): { runId: string; nextBody: () => string } {
  // encoding_format base64 is what the openai SDKs ask for by default.
  return distinctBodies((runId, n) => JSON.stringify({ model: 'text-embedding-3-small', input: `bench ${runId} ${n} a sentence to embed`, encoding_format: 'base64' }));
}

export type BatchingMode = 'off' | 'on';

/** Recall's configuration with embeddings batching off or on: defaults, but for `embeddings.batch_window_ms: 0` (off). */
export const EMBEDDINGS_BATCHING_CONFIG: Record<BatchingMode, string> = { off: 'embeddings:\n  batch_window_ms: 0\n', on: '# defaults: batching on\n' };

/**
 * Near-repeats of `question` that the exact tier cannot answer and the semantic tier can: other bytes (case, trailing
 * spaces), so other exact keys, and the same words, so the same vector.
 */
export function semanticVariants(question: string, count: number): string[] {
  return Array.from({ length: count }, (_, i) => chatBody(`${i % 2 === 1 ? question.toUpperCase() : question}${' '.repeat(1 + (i >> 1))}`));
}

/** Cycles through `bodies`. */
export function roundRobin(bodies: readonly string[]): () => string {
  let i = 0;
  return () => bodies[i++ % bodies.length] as string;
}

export interface Storm {
  requests: number;
  ok: number;
  /** Chat completions the upstream received for the storm. */
  upstreamCalls: number;
  /** Values of x-recall-cache. */
  outcomes: Record<string, number>;
  latency: LatencySummary;
}

/** `size` identical requests for a prompt nobody asked before, all at once (one connection each). */
export async function identicalStorm(target: Server, mock: Server, size: number, body: string): Promise<Storm> {
  const before = await mockRouteCount(mock, CHAT_ROUTE);
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  let ok = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon(
      {
        url: target.origin,
        connections: size,
        amount: size,
        timeout: 30,
        headers: BENCH_HEADERS,
        requests: [{
          method: 'POST', path: '/v1/chat/completions', body,
          onResponse: (status, _body, _context, headers) => {
            if (status === 200) ok++;
            const outcome = String(headers?.[CACHE_HEADER] ?? ABSENT);
            outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
          },
        }],
      },
      (error: unknown, done: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(done)),
    );
    instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  });
  if (result.errors > 0 || result.timeouts > 0) throw new Error(`storm on ${target.name}: ${result.errors} errors, ${result.timeouts} timeouts`);
  await sleep(200);
  const upstreamCalls = (await mockRouteCount(mock, CHAT_ROUTE)) - before;
  return { requests: latencies.length, ok, upstreamCalls, outcomes, latency: summariseLatency(Float64Array.from(latencies)) };
}

/** Resident memory of a child in bytes (Linux /proc); NaN where that is not available. */
export function childRssBytes(child: ChildProcess): number {
  try {
    const match = /^VmRSS:\s+(\d+) kB$/m.exec(readFileSync(`/proc/${child.pid}/status`, 'utf8'));
    return match === null ? Number.NaN : Number(match[1]) * 1024;
  } catch {
    return Number.NaN;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Load generation with autocannon

export interface LoadOptions {
  origin: string;
  /** The POST route; default `/v1/chat/completions`. */
  path?: string;
  connections: number;
  durationS: number;
  /** Requests per second over all connections; unlimited when undefined. */
  overallRate?: number | undefined;
  /**
   * With overallRate: one single-connection autocannon instance per connection, each at its share of the rate and
   * started 1/connections of a second after the previous one, so the requests are spread over each second.
   */
  staggered?: boolean;
  /** The same body for every request, or a new one per request. */
  body: string | (() => string);
  /** Headers on top of content-type and the benchmark's API key (e.g. a peer gateway's routing headers). */
  headers?: Record<string, string>;
  /**
   * Counts the values of this response header (lower case), `(absent)` included. It makes autocannon build a header
   * object per response, a client cost that is the same for every target.
   */
  tallyHeader?: string;
}

export interface LoadRun {
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
  /** Values of LoadOptions.tallyHeader and how many responses carried each; empty without tallyHeader. */
  headerTally: Record<string, number>;
}

export interface AutocannonLatency {
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
  headerTally: Map<string, number>;
}

export const ABSENT = '(absent)';

/** Shares `total` out as evenly as whole numbers allow, the larger shares first. */
function shares(total: number, parts: number): number[] {
  return Array.from({ length: parts }, (_, i) => Math.floor(total / parts) + (i < total % parts ? 1 : 0));
}

/** Runs autocannon instances; the ones still running are stopped by stopAll (SIGINT, watchdog). */
export class LoadGenerator {
  private readonly running = new Set<autocannon.Instance>();

  stopAll(): void {
    for (const instance of this.running) instance.stop();
  }

  async run(options: LoadOptions): Promise<LoadRun> {
    const recorder: ResponseRecorder = { latencies: [], completedAt: [], non2xx: 0, headerTally: new Map() };
    const startedAt = performance.now();
    let results: autocannon.Result[];
    if (options.staggered === true && options.overallRate !== undefined) {
      const gapMs = 1_000 / options.connections;
      const rates = shares(options.overallRate, options.connections).filter((rate) => rate > 0);
      results = await Promise.all(
        rates.map(async (rate, i) => {
          await sleep(i * gapMs);
          return this.runInstance(this.autocannonOptions(options, 1, rate, recorder), recorder);
        }),
      );
    } else {
      results = [await this.runInstance(this.autocannonOptions(options, options.connections, options.overallRate, recorder), recorder)];
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
      headerTally: Object.fromEntries(recorder.headerTally),
    };
  }

  private runInstance(options: autocannon.Options, recorder: ResponseRecorder): Promise<autocannon.Result> {
    return new Promise((resolve, reject) => {
      const instance = autocannon(options, (error: unknown, result: autocannon.Result) => {
        this.running.delete(instance);
        if (error) reject(error instanceof Error ? error : new Error(String(error)));
        else resolve(result);
      });
      this.running.add(instance);
      instance.on('response', (_client, statusCode, _bytes, responseTime) => {
        recorder.latencies.push(responseTime);
        recorder.completedAt.push(performance.now());
        if (statusCode < 200 || statusCode > 299) recorder.non2xx++;
      });
    });
  }

  /** A fresh options object per instance: autocannon writes the built request buffer into its request objects. */
  private autocannonOptions(options: LoadOptions, connections: number, overallRate: number | undefined, recorder: ResponseRecorder): autocannon.Options {
    const { body, tallyHeader } = options;
    const request: autocannon.Request = { method: 'POST', path: options.path ?? '/v1/chat/completions' };
    if (typeof body === 'string') request.body = body;
    else {
      request.setupRequest = (next) => {
        next.body = body();
        return next;
      };
    }
    if (tallyHeader !== undefined) {
      request.onResponse = (_status, _body, _context, headers) => {
        const raw = headers?.[tallyHeader];
        const value = raw === undefined ? ABSENT : String(raw);
        recorder.headerTally.set(value, (recorder.headerTally.get(value) ?? 0) + 1);
      };
    }
    return {
      url: options.origin,
      connections,
      duration: options.durationS,
      ...(overallRate === undefined ? {} : { overallRate }),
      headers: { ...BENCH_HEADERS, ...options.headers },
      requests: [request],
    };
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// CPU time per process, to compare costs per request on a machine too noisy for absolute throughput

const CLOCK_TICKS_PER_S = Number.parseInt(spawnSync('getconf', ['CLK_TCK'], { encoding: 'utf8' }).stdout ?? '', 10) || 100;

/** User + system CPU seconds a child has used so far (Linux /proc); NaN where that is not available. */
export function childCpuSeconds(child: ChildProcess): number {
  try {
    const stat = readFileSync(`/proc/${child.pid}/stat`, 'utf8');
    // Fields after the parenthesised command name start at field 3; utime and stime are fields 14 and 15.
    const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
    return (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

/**
 * CPU seconds the whole machine has been busy so far, over all cores (/proc/stat: user, nice, system, irq, softirq;
 * the kernel charges a process's loopback network work to it as well). What it gains beyond the run's own processes
 * was spent by someone else.
 */
export function machineCpuSeconds(): number {
  try {
    const fields = (readFileSync('/proc/stat', 'utf8').split('\n', 1)[0] ?? '').trim().split(/\s+/);
    // cpu user nice system idle iowait irq softirq steal …
    const busy = [1, 2, 3, 6, 7].reduce((sum, i) => sum + Number(fields[i]), 0);
    return busy / CLOCK_TICKS_PER_S;
  } catch {
    return Number.NaN;
  }
}

/** CPU seconds of this process, where autocannon runs. */
export function ownCpuSeconds(): number {
  const own = process.cpuUsage();
  return (own.user + own.system) / 1e6;
}

/** CPU seconds every process on the machine has used so far, by pid, with its command line (Linux /proc). */
function processCpuSeconds(): Map<number, { cpuS: number; command: string }> {
  const all = new Map<number, { cpuS: number; command: string }>();
  for (const name of readdirSync('/proc')) {
    if (!/^\d+$/.test(name)) continue;
    try {
      const stat = readFileSync(`/proc/${name}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      const cmdline = readFileSync(`/proc/${name}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
      const command = cmdline === '' ? stat.slice(stat.indexOf('(') + 1, stat.lastIndexOf(')')) : cmdline;
      all.set(Number(name), { cpuS: (Number(fields[11]) + Number(fields[12])) / CLOCK_TICKS_PER_S, command: command.slice(0, 70) });
    } catch {
      // gone meanwhile
    }
  }
  return all;
}

export interface MachineLoad {
  /** ISO time of the sample. */
  at: string;
  /** 1, 5 and 15 minute load averages. */
  loadAverage: number[];
  /** Other processes that used more than a tenth of a core over the sample, busiest first: `0.85 cores: <command>`. */
  busyProcesses: string[];
}

/** How busy the machine is right now: load averages, and the processes (other than this one) busy over `sampleMs`. */
export async function machineLoad(sampleMs = 1_000): Promise<MachineLoad> {
  const before = processCpuSeconds();
  await sleep(sampleMs);
  const after = processCpuSeconds();
  const busy: { cores: number; command: string }[] = [];
  for (const [pid, { cpuS, command }] of after) {
    const cores = (cpuS - (before.get(pid)?.cpuS ?? cpuS)) / (sampleMs / 1_000);
    if (pid !== process.pid && cores > 0.1) busy.push({ cores, command });
  }
  busy.sort((a, b) => b.cores - a.cores);
  return {
    at: new Date().toISOString(),
    loadAverage: loadavg().map((value) => Math.round(value * 100) / 100),
    busyProcesses: busy.slice(0, 5).map(({ cores, command }) => `${cores.toFixed(2)} cores: ${command}`),
  };
}

/** The time a whole run may take: each step asks it first, and a step that no longer fits is skipped and reported. */
export class Deadline {
  private readonly endsAt: number;

  constructor(readonly budgetMs: number) {
    this.endsAt = performance.now() + budgetMs;
  }

  remainingMs(): number {
    return this.endsAt - performance.now();
  }

  allows(ms: number): boolean {
    return this.remainingMs() >= ms;
  }
}

// ---------------------------------------------------------------------------------------------------------------------
// Statistics

export interface LatencySummary {
  mean: number;
  p50: number;
  p90: number;
  p99: number;
  max: number;
}

/** Nearest-rank percentile of an ascending array. */
export function percentile(sorted: Float64Array, p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[rank] ?? Number.NaN;
}

export function summariseLatency(latenciesMs: Float64Array): LatencySummary {
  const sorted = latenciesMs.slice().sort();
  const mean = sorted.reduce((sum, value) => sum + value, 0) / Math.max(1, sorted.length);
  return { mean, p50: percentile(sorted, 50), p90: percentile(sorted, 90), p99: percentile(sorted, 99), max: sorted[sorted.length - 1] ?? Number.NaN };
}

/**
 * Median, over the whole seconds of a run, of the time between the first and the last response of that second.
 * Close to 1000 ms when requests are spread over the second; small when they come in one burst.
 */
export function medianBusyMsPerSecond(run: LoadRun): number {
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

/** The most responses completed in any `windowMs` window (aligned to the run's start): rate × window when perfectly even. */
export function peakPerWindow(run: LoadRun, windowMs: number): number {
  const counts = new Map<number, number>();
  for (const at of run.completedAt) {
    const window = Math.floor((at - run.startedAt) / windowMs);
    counts.set(window, (counts.get(window) ?? 0) + 1);
  }
  return Math.max(0, ...counts.values());
}

// ---------------------------------------------------------------------------------------------------------------------
// Report

export interface Machine {
  nproc: number;
  cpu: string;
  platform: string;
  node: string;
}

export function machine(): Machine {
  const result = spawnSync('nproc', { encoding: 'utf8' });
  const value = Number.parseInt(result.stdout ?? '', 10);
  return {
    nproc: Number.isFinite(value) ? value : availableParallelism(),
    cpu: cpus()[0]?.model ?? 'unknown CPU',
    platform: `${platform()} ${arch()}`,
    node: process.version,
  };
}

/** The commit dist/ was built from, and the files under src/ that differ from it. */
export function recallBuild(): { commit: string; changedSources: string[] } {
  const git = (args: string[]): string => spawnSync('git', args, { cwd: ROOT, encoding: 'utf8' }).stdout?.trim() ?? '';
  const changed = git(['status', '--porcelain', '--', 'src']);
  return { commit: git(['rev-parse', '--short', 'HEAD']) || 'unknown', changedSources: changed === '' ? [] : changed.split('\n').map((line) => line.slice(3)) };
}

/** The first lines of a report: its title with the run's date, the machine and the command that started it. */
export function reportHeading(title: string, date: string, host: Machine, command: string): string[] {
  return [`## ${title}, ${date}`, '', `- machine: ${host.nproc} CPUs (\`nproc\`), ${host.cpu}, ${host.platform}; node ${host.node}`, `- command: \`${command}\``];
}

/** The report's closing **Warnings** list; nothing when there are none. */
export function warningsMarkdown(warnings: string[]): string[] {
  return warnings.length === 0 ? [] : ['**Warnings**', '', ...warnings.map((w) => `- ${w}`), ''];
}

/**
 * Saves `report` as loadtest/results/<prefix>-<started>.json, prints `markdown` and the JSON file's path, then each
 * warning to stderr.
 */
export function saveAndPrintReport(prefix: string, started: Date, report: { warnings: string[] }, markdown: string): void {
  mkdirSync(RESULTS_DIR, { recursive: true });
  const file = join(RESULTS_DIR, `${prefix}-${timestampForFile(started)}.json`);
  writeFileSync(file, `${JSON.stringify(report, null, 2)}\n`);
  console.log(markdown);
  console.log(`JSON: ${file}`);
  for (const warning of report.warnings) process.stderr.write(`WARNING: ${warning}\n`);
}

export function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : 'n/a';
}

export function metOrNot(met: boolean): string {
  return met ? '**met**' : '**not met**';
}

export function timestampForFile(date: Date): string {
  return date.toISOString().replace(/[:.]/g, '-');
}

// ---------------------------------------------------------------------------------------------------------------------
// --cpu-prof: the top self-time functions of a profile

interface ProfileNode {
  id: number;
  callFrame: { functionName: string; url: string; lineNumber: number };
  children?: number[];
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

/** Self time per owner and per function, as a share of all samples and, given the requests served, in µs per request. */
function summariseProfile(profile: CpuProfile, top: number, requests: number | undefined): string {
  const selfUs = new Map<number, number>();
  profile.samples.forEach((nodeId, i) => selfUs.set(nodeId, (selfUs.get(nodeId) ?? 0) + (profile.timeDeltas[i] ?? 0)));
  const total = [...selfUs.values()].reduce((sum, us) => sum + us, 0);
  const byFunction = new Map<string, number>();
  const byOwner = new Map<string, number>();
  const keyOf = new Map<number, string>();
  const ownCode = new Set<number>();
  for (const node of profile.nodes) {
    const us = selfUs.get(node.id) ?? 0;
    const { functionName, url, lineNumber } = node.callFrame;
    const file = url.replace(/^file:\/\//, '').replace(ROOT, '');
    const key = `${functionName || '(anonymous)'}  ${file === '' ? '' : `${file}:${lineNumber + 1}`}`;
    keyOf.set(node.id, key);
    if (url.startsWith(`file://${ROOT}`) && !file.includes('node_modules/')) ownCode.add(node.id);
    byFunction.set(key, (byFunction.get(key) ?? 0) + us);
    const owner = ownerOf(file, functionName);
    byOwner.set(owner, (byOwner.get(owner) ?? 0) + us);
  }
  // Inclusive time of this repository's own functions: each sample counts once for every such function on its stack.
  const parentOf = new Map<number, number>();
  for (const node of profile.nodes) for (const child of node.children ?? []) parentOf.set(child, node.id);
  const inclusive = new Map<string, number>();
  for (const [nodeId, us] of selfUs) {
    const onStack = new Set<string>();
    for (let id: number | undefined = nodeId; id !== undefined; id = parentOf.get(id)) if (ownCode.has(id)) onStack.add(keyOf.get(id) ?? '');
    for (const key of onStack) inclusive.set(key, (inclusive.get(key) ?? 0) + us);
  }
  const share = (us: number): string => `${((100 * us) / total).toFixed(1).padStart(5)} %`;
  const perRequest = (us: number): string => (requests === undefined ? '' : `  ${(us / requests).toFixed(2).padStart(6)} µs/req`);
  const ranked = (map: Map<string, number>, n: number): string[] =>
    [...map].sort((x, y) => y[1] - x[1]).slice(0, n).map(([name, us]) => `${share(us)}  ${(us / 1_000).toFixed(0).padStart(6)} ms${perRequest(us)}  ${name}`);
  return [
    `profile: ${(total / 1_000).toFixed(0)} ms of samples${requests === undefined ? '' : ` over ${requests} requests`}`,
    '',
    'self time by owner:',
    ...ranked(byOwner, 12),
    '',
    `top ${top} functions by self time:`,
    ...ranked(byFunction, top),
    '',
    `top ${top} of this repository's own functions by inclusive time (what they and everything they call cost):`,
    ...ranked(inclusive, top),
  ].join('\n');
}

/** The summary of the one .cpuprofile node wrote into `dir`, headed by its path; `requests` adds µs per request. */
export function profileSummary(dir: string, top: number, requests?: number): string {
  const file = readdirSync(dir).find((name) => name.endsWith('.cpuprofile'));
  if (file === undefined) throw new Error(`no .cpuprofile written to ${dir}`);
  const profile = JSON.parse(readFileSync(join(dir, file), 'utf8')) as CpuProfile;
  return `${join(dir, file)}\n\n${summariseProfile(profile, top, requests)}`;
}
