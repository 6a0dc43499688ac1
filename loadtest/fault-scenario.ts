// The fault and load scenario of docs/RELIABILITY.md ("Faults under load"): sustained autocannon load against a Recall
// process on a throwaway Redis, while that Redis is restarted and the mock upstream fails and stalls a share of its
// calls. Every response is put in one class (served; an upstream error passed through; an upstream stall that became
// Recall's 504; a failure Recall caused), Recall's RSS is sampled throughout, and the hit rate is taken around each
// restart. `npm run test:faults` runs it for 60 s with two restarts; test/loadtest/faults.test.ts runs a short version.
import autocannon from 'autocannon';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import { startThrowawayRedis, type ThrowawayRedis } from '../test/support/redis.js';
import { ChildProcesses, freePort, ROOT, STARTUP_TIMEOUT_MS } from './bench-harness.js';
import { seededRandom, startMockUpstream, type Fault, type MockUpstream } from './mock-upstream.js';

export interface FaultScenarioOptions {
  durationS: number;
  /** Redis restarts, spread evenly over the run. */
  restarts: number;
  connections: number;
  /** Requests per second over all connections (bounded, so that the run does not starve a shared machine). */
  rate: number;
  /** Share of requests that repeat one of `hotPrompts` prompts (the cache serves these); the others are new prompts. */
  hotShare: number;
  hotPrompts: number;
  /** Share of requests that ask for a stream. */
  streamShare: number;
  /** Faults of the mock upstream, per upstream call. */
  faultRates: Partial<Record<Fault, number>>;
  seed: number;
  /** Recall's upstream.headers_timeout_ms: a stalled upstream call ends as Recall's 504 after it. */
  headersTimeoutMs: number;
  /** How often Recall's RSS is read. */
  rssIntervalMs: number;
  /**
   * Short-lived entries and stale-if-error: cache.ttl_seconds and cache.stale_if_error_seconds. Upstream failures of
   * requests whose entry has expired are then answered STALE. Undefined: the defaults (a day; off).
   */
  stale?: { ttlS: number; graceS: number } | undefined;
}

export const FULL_RUN: FaultScenarioOptions = {
  durationS: 60,
  restarts: 2,
  connections: 20,
  rate: 250,
  hotShare: 0.7,
  hotPrompts: 200,
  streamShare: 0.15,
  // 5 % of upstream calls fail with a 5xx, 1 % stall.
  faultRates: { '500': 0.015, '502': 0.01, '503': 0.025, stall: 0.01 },
  seed: 7,
  headersTimeoutMs: 2_000,
  rssIntervalMs: 500,
};

/** What a response was, from the client's side. */
export type ResponseClass = 'served' | 'upstream_error' | 'upstream_stall' | 'recall_failure';

/** Hit rate of the repeated (hot) prompts in one window: answers from a cache over answers that could have been. */
export interface WindowHitRate {
  fromS: number;
  toS: number;
  hot: number;
  hits: number;
  hitRate: number | null;
}

export interface RestartFigures {
  atS: number;
  /** How long the restart took (kill, start, first PONG). */
  tookMs: number;
  before: WindowHitRate;
  during: WindowHitRate;
  after: WindowHitRate;
}

export interface FaultReport {
  options: FaultScenarioOptions;
  responses: number;
  byClass: Record<ResponseClass, number>;
  /** 2xx answers by X-Recall-Cache. */
  servedBy: Record<string, number>;
  /** Upstream errors and stalls that reached clients, by status and X-Recall-Cache (a joined request shares its leader's). */
  upstreamCausedBy: Record<string, number>;
  /** Up to 20 failures Recall caused, for the report: status, error code, X-Recall-Cache. */
  recallFailures: string[];
  autocannon: { sent: number; errors: number; timeouts: number };
  mock: { calls: number; faults: Record<string, number> };
  restarts: RestartFigures[];
  rssMb: { atStart: number; afterWarmup: number; peak: number; atEnd: number; samples: number };
  /** From Recall's /metrics at the end; the semantic index is the part of Recall's memory that grows with new prompts. */
  recall: { storeErrors: number; upstreamErrors: number; semanticVectors: number; semanticIndexMb: number; alive: boolean };
}

/** Outcomes served from a cache entry, and those that could have been (as the hit rate in /recall/stats counts). */
const FROM_CACHE = new Set(['HIT', 'SEMANTIC', 'STALE']);
const CACHEABLE = new Set([...FROM_CACHE, 'MISS', 'COALESCED']);

interface Sample {
  atMs: number;
  hot: boolean;
  status: number;
  cache: string;
  kind: ResponseClass;
  detail: string;
}

/**
 * Tells the mock's errors (marked `x-mock-fault`, in OpenAI's shape with a null code, passed through unchanged) and a
 * stalled upstream call (Recall's 504 `upstream_timeout`) from anything Recall answered on its own.
 */
export function classify(status: number, body: string, headers: Record<string, unknown>): { kind: ResponseClass; detail: string } {
  if (status >= 200 && status < 300) return { kind: 'served', detail: '' };
  let error: { type?: unknown; code?: unknown } | undefined;
  try {
    error = (JSON.parse(body) as { error?: { type?: unknown; code?: unknown } }).error;
  } catch {
    // not JSON: not the mock's, not Recall's error shape
  }
  const code = error?.code === undefined ? 'no-error-body' : String(error.code);
  if (headers['x-mock-fault'] === String(status) && error?.type === 'server_error' && error.code === null) return { kind: 'upstream_error', detail: '' };
  if (status === 504 && code === 'upstream_timeout') return { kind: 'upstream_stall', detail: '' };
  return { kind: 'recall_failure', detail: `${status} ${code}` };
}

function header(headers: Record<string, unknown> | undefined, name: string): string {
  const value = headers?.[name];
  return value === undefined ? '(none)' : String(value);
}

function hitRateIn(samples: readonly Sample[], fromMs: number, toMs: number): WindowHitRate {
  let hot = 0;
  let hits = 0;
  for (const sample of samples) {
    if (!sample.hot || sample.atMs < fromMs || sample.atMs >= toMs || !CACHEABLE.has(sample.cache)) continue;
    hot++;
    if (FROM_CACHE.has(sample.cache)) hits++;
  }
  return { fromS: round(fromMs / 1000), toS: round(toMs / 1000), hot, hits, hitRate: hot === 0 ? null : round(hits / hot, 3) };
}

function round(value: number, digits = 1): number {
  const scale = 10 ** digits;
  return Math.round(value * scale) / scale;
}

function tally(into: Record<string, number>, key: string): void {
  into[key] = (into[key] ?? 0) + 1;
}

/** Resident set size of a process in MB (Linux /proc); NaN where it cannot be read. */
function rssMb(pid: number | undefined): number {
  try {
    const status = readFileSync(`/proc/${pid}/status`, 'utf8');
    const kb = /VmRSS:\s+(\d+)/.exec(status)?.[1];
    return kb === undefined ? Number.NaN : round(Number(kb) / 1024);
  } catch {
    return Number.NaN;
  }
}

/** Sum of a counter's (or gauge's) samples in Prometheus text. */
function metricSum(text: string, name: string): number {
  let sum = 0;
  for (const line of text.split('\n')) if (line.startsWith(`${name}{`) || line.startsWith(`${name} `)) sum += Number(line.slice(line.lastIndexOf(' ') + 1));
  return sum;
}

/** Recall from its sources (under tsx: no build needed), configured by a YAML file; stdout (the request log) discarded. */
async function startRecallProcess(children: ChildProcesses, mock: MockUpstream, redis: ThrowawayRedis, options: FaultScenarioOptions, dir: string) {
  const port = await freePort();
  const configPath = join(dir, 'recall.yaml');
  writeFileSync(configPath, [
    'server:', '  host: 127.0.0.1', `  port: ${port}`,
    'upstream:', `  url: ${mock.baseURL}`, '  retries: 0', `  headers_timeout_ms: ${options.headersTimeoutMs}`,
    ...(options.stale === undefined ? [] : ['cache:', `  ttl_seconds: ${options.stale.ttlS}`, `  stale_if_error_seconds: ${options.stale.graceS}`]),
    'redis:', `  url: ${redis.url}`,
    // A loaded, shared machine answers loopback Redis slower than the 10 ms default: lookups would fail open as misses.
    '  command_timeout_ms: 200',
    'log:', '  level: warn', '',
  ].join('\n'));
  const inherited = Object.entries(process.env).filter(([name]) => !name.startsWith('RECALL_'));
  const child = children.spawn(process.execPath, ['--import', 'tsx', join(ROOT, 'src', 'main.ts')], {
    cwd: ROOT, env: { ...Object.fromEntries(inherited), RECALL_CONFIG: configPath }, stdio: ['ignore', 'ignore', 'pipe'],
  });
  let stderr = '';
  child.stderr?.on('data', (chunk: Buffer) => { stderr = (stderr + chunk.toString()).slice(-4_000); });
  const origin = `http://127.0.0.1:${port}`;
  const deadline = Date.now() + STARTUP_TIMEOUT_MS * 2;
  while (Date.now() < deadline) {
    if (child.exitCode !== null) throw new Error(`Recall exited early (${child.exitCode}): ${stderr}`);
    const up = await fetch(`${origin}/healthz`, { signal: AbortSignal.timeout(1_000) }).then((r) => r.ok, () => false);
    if (up) return { child, origin, stderr: () => stderr };
    await sleep(100);
  }
  throw new Error(`Recall did not answer /healthz in time: ${stderr}`);
}

/** Runs the scenario; every process and server it starts is stopped before it returns or throws. */
export async function runFaultScenario(options: FaultScenarioOptions): Promise<FaultReport> {
  const children = new ChildProcesses();
  const dir = mkdtempSync(join(tmpdir(), 'recall-faults-'));
  const mock = await startMockUpstream({ latencyMs: 5, faultRates: options.faultRates, faultSeed: options.seed });
  let redis: ThrowawayRedis | undefined;
  let instance: autocannon.Instance | undefined;
  try {
    redis = await startThrowawayRedis();
    const recall = await startRecallProcess(children, mock, redis, options, dir);
    const pid = recall.child.pid;

    const samples: Sample[] = [];
    const rss: { atMs: number; mb: number }[] = [];
    const random = seededRandom(options.seed);
    let fresh = 0;
    const t0 = performance.now();
    const rssTimer = setInterval(() => rss.push({ atMs: performance.now() - t0, mb: rssMb(pid) }), options.rssIntervalMs);
    rss.push({ atMs: 0, mb: rssMb(pid) });

    const request: autocannon.Request = {
      method: 'POST',
      path: '/v1/chat/completions',
      setupRequest: (next, context) => {
        const hot = random() < options.hotShare;
        const prompt = hot ? `faults hot prompt ${Math.floor(random() * options.hotPrompts)}: what does a cache do?` : `faults fresh prompt ${++fresh}: explain retries`;
        (context as { hot?: boolean }).hot = hot;
        return { ...next, body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: prompt }], stream: random() < options.streamShare }) };
      },
      onResponse: (status, body, context, headers) => {
        const { kind, detail } = classify(status, body, (headers ?? {}) as Record<string, unknown>);
        const cache = header(headers as Record<string, unknown>, 'x-recall-cache');
        samples.push({ atMs: performance.now() - t0, hot: (context as { hot?: boolean }).hot === true, status, cache, kind, detail });
      },
    };
    const load = new Promise<autocannon.Result>((resolve, reject) => {
      instance = autocannon({
        url: recall.origin, connections: options.connections, overallRate: options.rate, duration: options.durationS,
        // A stall ends as Recall's 504 after headersTimeoutMs; anything slower than this counts as a client timeout.
        timeout: Math.ceil(options.headersTimeoutMs / 1000) + 10,
        headers: { 'content-type': 'application/json', authorization: 'Bearer sk-faults' },
        requests: [request],
      }, (error: unknown, result: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(result)));
    });

    // Restarts at even intervals: with two in 60 s, at 20 s and 40 s.
    const intervalMs = (options.durationS * 1000) / (options.restarts + 1);
    const restartTimes: { atMs: number; tookMs: number }[] = [];
    for (let i = 1; i <= options.restarts; i++) {
      const due = i * intervalMs - (performance.now() - t0);
      if (due > 0) await sleep(due);
      const at = performance.now() - t0;
      await redis.restart();
      restartTimes.push({ atMs: at, tookMs: Math.round(performance.now() - t0 - at) });
    }
    const result = await load;
    clearInterval(rssTimer);
    rss.push({ atMs: performance.now() - t0, mb: rssMb(pid) });

    const metricsText = await fetch(`${recall.origin}/metrics`).then((r) => r.text(), () => '');
    const alive = recall.child.exitCode === null && recall.child.signalCode === null;
    await children.stop(recall.child);

    // Windows around each restart: the W seconds before it, the W seconds after it, and the last W seconds before the
    // next restart (or the end of the run), by which time the emptied Redis has been filled again.
    const windowMs = Math.min(5_000, intervalMs / 3);
    const restarts = restartTimes.map(({ atMs, tookMs }, i) => {
      const nextAt = restartTimes[i + 1]?.atMs ?? options.durationS * 1000;
      return {
        atS: round(atMs / 1000), tookMs,
        before: hitRateIn(samples, atMs - windowMs, atMs),
        during: hitRateIn(samples, atMs, atMs + windowMs),
        after: hitRateIn(samples, nextAt - windowMs, nextAt),
      };
    });

    const byClass: Record<ResponseClass, number> = { served: 0, upstream_error: 0, upstream_stall: 0, recall_failure: 0 };
    const servedBy: Record<string, number> = {};
    const upstreamCausedBy: Record<string, number> = {};
    const recallFailures: string[] = [];
    for (const sample of samples) {
      byClass[sample.kind]++;
      if (sample.kind === 'served') tally(servedBy, sample.cache);
      else if (sample.kind === 'recall_failure') {
        if (recallFailures.length < 20) recallFailures.push(`${sample.detail} (${sample.cache}) at ${round(sample.atMs / 1000)} s`);
      } else tally(upstreamCausedBy, `${sample.status} ${sample.cache}`);
    }
    const warmupEnd = rss.find((s) => s.atMs >= (options.durationS * 1000) / 4) ?? rss[rss.length - 1]!;
    const mockStats = mock.stats();
    return {
      options,
      responses: samples.length,
      byClass,
      servedBy,
      upstreamCausedBy,
      recallFailures,
      autocannon: { sent: result.requests.sent, errors: result.errors, timeouts: result.timeouts },
      mock: { calls: mockStats.byRoute['POST /v1/chat/completions'] ?? 0, faults: mockStats.faults },
      restarts,
      rssMb: { atStart: rss[0]!.mb, afterWarmup: warmupEnd.mb, peak: Math.max(...rss.map((s) => s.mb)), atEnd: rss[rss.length - 1]!.mb, samples: rss.length },
      recall: {
        storeErrors: metricSum(metricsText, 'recall_cache_store_errors_total'),
        upstreamErrors: metricSum(metricsText, 'recall_upstream_errors_total'),
        semanticVectors: metricSum(metricsText, 'recall_semantic_vectors'),
        semanticIndexMb: round(metricSum(metricsText, 'recall_semantic_index_bytes') / (1024 * 1024)),
        alive,
      },
    };
  } finally {
    instance?.stop();
    children.killNow();
    await redis?.stop();
    await mock.close();
    rmSync(dir, { recursive: true, force: true });
  }
}

/**
 * What the run must show, as sentences that name what failed: no failure caused by Recall, no socket error or client
 * timeout, Recall alive, memory bounded, and the hit rate back after each restart.
 */
export function problems(report: FaultReport, limits = { rssGrowthMb: 150, hitRateDrop: 0.1 }): string[] {
  const found: string[] = [];
  if (report.byClass.recall_failure > 0) found.push(`${report.byClass.recall_failure} failures caused by Recall: ${report.recallFailures.join('; ')}`);
  if (report.autocannon.errors > 0 || report.autocannon.timeouts > 0) found.push(`autocannon counted ${report.autocannon.errors} errors, ${report.autocannon.timeouts} timeouts`);
  if (!report.recall.alive) found.push('Recall exited during the run');
  const growth = report.rssMb.peak - report.rssMb.afterWarmup;
  if (!(growth <= limits.rssGrowthMb)) found.push(`Recall's RSS grew by ${round(growth)} MB after warm-up (${report.rssMb.afterWarmup} → peak ${report.rssMb.peak} MB)`);
  for (const restart of report.restarts) {
    const { before, after } = restart;
    if (before.hitRate === null || after.hitRate === null) found.push(`too few hot requests around the restart at ${restart.atS} s to measure a hit rate`);
    else if (after.hitRate < before.hitRate - limits.hitRateDrop) found.push(`hit rate after the restart at ${restart.atS} s is ${after.hitRate}, before it ${before.hitRate}`);
  }
  return found;
}

function rate(value: number | null): string {
  return value === null ? 'n/a' : value.toFixed(3);
}

function list(record: Record<string, number>): string {
  const entries = Object.entries(record).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? 'none' : entries.map(([key, count]) => `${key}: ${count}`).join(', ');
}

/** The report as Markdown: counts and ratios only (the machine is shared; no throughput figures). */
export function faultReportMarkdown(report: FaultReport, found: readonly string[]): string[] {
  const { byClass, options } = report;
  const share = (n: number) => `${n} (${((100 * n) / Math.max(1, report.responses)).toFixed(2)} %)`;
  return [
    `- load: ${options.connections} connections, at most ${options.rate} requests/s for ${options.durationS} s; ${options.hotShare * 100} % of requests repeat one of ${options.hotPrompts} prompts, the rest are new; ${options.streamShare * 100} % stream`,
    `- faults per upstream call: ${list(options.faultRates as Record<string, number>)} (seed ${options.seed}); Recall's upstream.headers_timeout_ms ${options.headersTimeoutMs}, upstream.retries 0`,
    options.stale === undefined ? '- cache: default TTL (a day), stale-if-error off'
      : `- cache: entries live ${options.stale.ttlS} s, stale-if-error ${options.stale.graceS} s (cache.stale_if_error_seconds): failures of requests whose entry expired are answered STALE`,
    `- Redis restarts (kill, fresh empty server on the same port): ${report.restarts.map((r) => `at ${r.atS} s (${r.tookMs} ms)`).join(', ') || 'none'}`,
    '',
    '| responses | served (2xx) | upstream errors passed through | upstream stalls → Recall 504 | failures caused by Recall | autocannon errors / timeouts |',
    '| --- | --- | --- | --- | --- | --- |',
    `| ${report.responses} | ${share(byClass.served)} | ${share(byClass.upstream_error)} | ${share(byClass.upstream_stall)} | ${byClass.recall_failure} | ${report.autocannon.errors} / ${report.autocannon.timeouts} |`,
    '',
    `- served by X-Recall-Cache: ${list(report.servedBy)}`,
    `- upstream-caused answers by status and X-Recall-Cache (joined requests share their leader's answer): ${list(report.upstreamCausedBy)}`,
    `- mock upstream: ${report.mock.calls} chat calls, faults applied: ${list(report.mock.faults)}`,
    `- Recall's /metrics at the end: ${report.recall.storeErrors} failed cache operations (each failed open), ${report.recall.upstreamErrors} failed upstream attempts`,
    `- Recall's RSS: ${report.rssMb.atStart} MB at start, ${report.rssMb.afterWarmup} MB after the first quarter, peak ${report.rssMb.peak} MB, ${report.rssMb.atEnd} MB at the end (${report.rssMb.samples} samples); its semantic index held ${report.recall.semanticVectors} vectors, ${report.recall.semanticIndexMb} MB by its own estimate (bounded by semantic.max_vectors)`,
    '',
    '| Redis restart | hot hit rate before | during (first seconds) | after (before the next restart / end) |',
    '| --- | --- | --- | --- |',
    ...report.restarts.map((r) => `| at ${r.atS} s | ${rate(r.before.hitRate)} (${r.before.hits}/${r.before.hot}) | ${rate(r.during.hitRate)} (${r.during.hits}/${r.during.hot}) | ${rate(r.after.hitRate)} (${r.after.hits}/${r.after.hot}) |`),
    '',
    found.length === 0 ? '**Result: pass** — no failure caused by Recall, memory bounded, hit rate recovered after every restart.' : `**Result: FAIL**\n\n${found.map((p) => `- ${p}`).join('\n')}`,
  ];
}
