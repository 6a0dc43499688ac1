// The parts a Recall load benchmark is built from: child processes on loopback that always die with the run, autocannon
// load with per-response hrtime latencies, CPU time per process from /proc, percentiles, and a `--cpu-prof` summary.
// loadtest/bench-forward.ts, loadtest/bench-hits.ts and loadtest/bench-embeddings.ts are built from it.

import autocannon from 'autocannon';
import { spawn, spawnSync, type ChildProcess, type SpawnOptions } from 'node:child_process';
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { arch, availableParallelism, cpus, platform } from 'node:os';
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
function tail(stream: NodeJS.ReadableStream | null): () => string {
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

  spawn(command: string, args: string[], options: SpawnOptions): ChildProcess {
    const child = spawn(command, args, options);
    this.running.add(child);
    child.once('exit', () => this.running.delete(child));
    return child;
  }

  async stop(child: ChildProcess): Promise<void> {
    if (child.exitCode !== null || child.signalCode !== null) return;
    const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
    child.kill('SIGTERM');
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_STOP_TIMEOUT_MS);
    await exited;
    clearTimeout(timer);
  }

  killNow(): void {
    for (const child of this.running) child.kill('SIGKILL');
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
  /** Flags for node itself, e.g. --cpu-prof. */
  nodeFlags?: string[];
}

/** `node dist/main.js` with default settings (log level info included) apart from `env`, its stdout going to /dev/null. */
export async function startRecall(children: ChildProcesses, options: RecallOptions): Promise<Server> {
  const port = await freePort();
  // What a user gets by default: no config file and no RECALL_* setting (log level, upstream key, Redis…) from the caller's shell.
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('RECALL_'));
  const env: NodeJS.ProcessEnv = {
    ...Object.fromEntries(inherited),
    RECALL_HOST: '127.0.0.1',
    RECALL_PORT: String(port),
    RECALL_UPSTREAM_URL: options.upstreamBaseUrl,
    ...options.env,
  };
  const child = children.spawn(process.execPath, [...(options.nodeFlags ?? []), join(ROOT, 'dist', 'main.js')], { cwd: ROOT, env, stdio: ['ignore', 'ignore', 'pipe'] });
  const recall: Server = { name: options.name, process: child, origin: `http://127.0.0.1:${port}`, stderr: tail(child.stderr) };
  await waitForHealthz(recall);
  return recall;
}

async function waitForHealthz(recall: Server): Promise<void> {
  const deadline = Date.now() + STARTUP_TIMEOUT_MS;
  while (Date.now() < deadline) {
    if (recall.process.exitCode !== null) throw new Error(`${recall.name} exited early (${recall.process.exitCode}): ${recall.stderr()}`);
    try {
      const response = await fetch(`${recall.origin}/healthz`, { signal: AbortSignal.timeout(1_000) });
      if (response.ok) return;
    } catch {
      // not listening yet
    }
    await sleep(100);
  }
  throw new Error(`${recall.name} did not answer /healthz within ${STARTUP_TIMEOUT_MS} ms: ${recall.stderr()}`);
}

export function buildIfStale(): void {
  const result = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build-if-stale.mjs')], { cwd: ROOT, stdio: 'inherit' });
  if (result.status !== 0) throw new Error(`build failed (exit ${result.status ?? result.signal})`);
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
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' },
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
