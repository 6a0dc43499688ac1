// Embeddings batching benchmark: autocannon sends single-input /v1/embeddings requests, every input distinct (all cache
// misses), through Recall with batching off and then on, in front of a mock upstream that takes 50 ms per call and
// serves at most 8 calls at once, like a provider's concurrency cap. Prints a Markdown report and saves it as JSON.
//
//   npm run bench:embeddings -- [--duration 10] [--warmup 2] [--connections 50] [--mock-latency-ms 50] [--max-concurrent 8]

import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildIfStale,
  distinctEmbeddingInputs,
  EMBEDDINGS_BATCHING_CONFIG,
  ChildProcesses,
  commandLine,
  commonBenchSettings,
  LoadGenerator,
  machine,
  metOrNot,
  ms,
  parseBenchFlags,
  positiveNumber,
  recallBuild,
  reportHeading,
  runBenchmarkProcess,
  saveAndPrintReport,
  startRecall,
  startScript,
  summariseLatency,
  warningsMarkdown,
  withWatchdog,
  type CommonBenchSettings,
  type BatchingMode,
  type LatencySummary,
  type Machine,
  type Server,
} from './bench-harness.js';

const EMBEDDINGS_ROUTE = 'POST /v1/embeddings';
/** Time for requests cut off when autocannon stops to reach (or fail to reach) the mock before it is counted. */
const SETTLE_MS = 300;
const TARGET_RATIO = 3;
/** The whole run must stay short (the machine is shared): durations are capped so that it fits. */
const BUDGET_MS = 90_000;

// ---------------------------------------------------------------------------------------------------------------------
// Settings

interface BenchSettings extends CommonBenchSettings {
  mockLatencyMs: number;
  maxConcurrent: number;
}

function readSettings(argv: string[]): BenchSettings {
  const flags = parseBenchFlags(argv, ['mock-latency-ms', 'max-concurrent']);
  const common = commonBenchSettings(flags, 1);
  if (common.profile || flags.rate !== undefined) throw new Error('bench-embeddings takes neither --profile nor --rate');
  return {
    ...common,
    durationS: Math.min(common.durationS, 20),
    warmupS: Math.min(common.warmupS, 5),
    mockLatencyMs: positiveNumber('mock-latency-ms', flags['mock-latency-ms'], 50, 1_000),
    maxConcurrent: Math.round(positiveNumber('max-concurrent', flags['max-concurrent'], 8, 1_000)),
  };
}

// ---------------------------------------------------------------------------------------------------------------------
// The servers: the capped mock upstream and Recall, batching off or on

type Mode = BatchingMode;

const children = new ChildProcesses();
const loads = new LoadGenerator();

/** Recall with default settings but for `embeddings.batch_window_ms` (0 = off), from a throwaway config file. */
function startRecallWith(mock: Server, mode: Mode): Promise<Server> {
  return startRecall(children, { name: `Recall (batching ${mode})`, upstreamBaseUrl: `${mock.origin}/v1`, configYaml: EMBEDDINGS_BATCHING_CONFIG[mode] });
}

async function fetchJson(url: string, method: 'GET' | 'POST' = 'GET'): Promise<unknown> {
  const response = await fetch(url, { method, signal: AbortSignal.timeout(5_000) });
  if (!response.ok) throw new Error(`${method} ${url} answered ${response.status}`);
  return response.json();
}

async function upstreamCalls(mock: Server): Promise<{ calls: number; peakInProgress: number }> {
  await sleep(SETTLE_MS);
  const stats = (await fetchJson(`${mock.origin}/mock/stats`)) as { byRoute?: Record<string, number>; peakInProgress?: number };
  return { calls: stats.byRoute?.[EMBEDDINGS_ROUTE] ?? 0, peakInProgress: stats.peakInProgress ?? 0 };
}

/** The batcher's own figures, read from Recall's /metrics. */
interface BatchFigures {
  calls: number;
  inputs: number;
  triggers: Record<string, number>;
}

async function batchFigures(recall: Server): Promise<BatchFigures> {
  const response = await fetch(`${recall.origin}/metrics`, { signal: AbortSignal.timeout(5_000) });
  const text = await response.text();
  const value = (series: string): number => Number(text.split('\n').find((line) => line.startsWith(`${series} `))?.split(' ').at(-1) ?? 0);
  const triggers: Record<string, number> = {};
  for (const match of text.matchAll(/^recall_embeddings_batches_total\{trigger="([a-z]+)"\} (\d+)$/gm)) triggers[match[1] as string] = Number(match[2]);
  return { calls: value('recall_embeddings_batch_inputs_count'), inputs: value('recall_embeddings_batch_inputs_sum'), triggers };
}

function difference(after: BatchFigures, before: BatchFigures): BatchFigures {
  const triggers: Record<string, number> = {};
  for (const [name, count] of Object.entries(after.triggers)) {
    const delta = count - (before.triggers[name] ?? 0);
    if (delta > 0) triggers[name] = delta;
  }
  return { calls: after.calls - before.calls, inputs: after.inputs - before.inputs, triggers };
}

// ---------------------------------------------------------------------------------------------------------------------
// Measurements

interface Measurement {
  mode: Mode;
  requestsPerSecond: number;
  responses: number;
  non2xx: number;
  errors: number;
  timeouts: number;
  latencyMs: LatencySummary;
  /** Embeddings calls the mock received during the measured run. */
  upstreamCalls: number;
  /** The most calls the mock had in progress at once (≤ its cap). */
  upstreamPeakInProgress: number;
  batches: BatchFigures;
}

async function measure(mode: Mode, recall: Server, mock: Server, settings: BenchSettings, nextBody: () => string): Promise<Measurement> {
  process.stderr.write(`  batching ${mode}: warm-up ${settings.warmupS} s, then ${settings.durationS} s\n`);
  const load = { origin: recall.origin, path: '/v1/embeddings', connections: settings.connections, body: nextBody };
  await loads.run({ ...load, durationS: settings.warmupS });
  await sleep(SETTLE_MS);
  await fetchJson(`${mock.origin}/mock/reset`, 'POST');
  const batchesBefore = await batchFigures(recall);
  const run = await loads.run({ ...load, durationS: settings.durationS });
  const upstream = await upstreamCalls(mock);
  return {
    mode,
    requestsPerSecond: run.requestsPerSecond,
    responses: run.responses,
    non2xx: run.non2xx,
    errors: run.errors,
    timeouts: run.timeouts,
    latencyMs: summariseLatency(run.latenciesMs),
    upstreamCalls: upstream.calls,
    upstreamPeakInProgress: upstream.peakInProgress,
    batches: difference(await batchFigures(recall), batchesBefore),
  };
}

function warningsOf(m: Measurement): string[] {
  const warnings: string[] = [];
  if (m.non2xx > 0) warnings.push(`batching ${m.mode}: ${m.non2xx} non-2xx responses`);
  if (m.errors > 0 || m.timeouts > 0) warnings.push(`batching ${m.mode}: ${m.errors} errors, ${m.timeouts} timeouts`);
  return warnings;
}

// ---------------------------------------------------------------------------------------------------------------------
// Report

interface Report {
  date: string;
  machine: Machine;
  command: string;
  recallBuild: { commit: string; changedSources: string[] };
  runId: string;
  settings: Omit<BenchSettings, 'profile' | 'rate'>;
  off: Measurement;
  on: Measurement;
  ratio: number;
  met: boolean;
  warnings: string[];
}

function reportMarkdown(report: Report): string {
  const { settings } = report;
  const row = (m: Measurement): string => {
    const perCall = m.upstreamCalls === 0 ? 'n/a' : (m.responses / m.upstreamCalls).toFixed(1);
    const triggers = Object.entries(m.batches.triggers).map(([name, count]) => `${name} ${count}`).join(', ') || '-';
    return `| batching ${m.mode} | ${m.requestsPerSecond.toFixed(0)} | ${ms(m.latencyMs.p50)} | ${ms(m.latencyMs.p99)} | ${m.responses} | ${m.non2xx} | ` +
      `${m.errors + m.timeouts} | ${m.upstreamCalls} | ${perCall} | ${m.upstreamPeakInProgress} | ${triggers} |`;
  };
  return [
    ...reportHeading('Recall embeddings batching benchmark', report.date, report.machine, report.command),
    `- Recall build: commit ${report.recallBuild.commit}` +
      (report.recallBuild.changedSources.length === 0 ? '' : ` with uncommitted changes to ${report.recallBuild.changedSources.join(', ')}`),
    `- mock upstream: ${settings.mockLatencyMs} ms per call, at most ${settings.maxConcurrent} calls in progress (the rest wait their turn)`,
    `- load: ${settings.connections} connections, warm-up ${settings.warmupS} s then ${settings.durationS} s per mode; single-input \`POST /v1/embeddings\`, ` +
      `every input distinct (run ${report.runId}), \`encoding_format: base64\`; Recall defaults apart from \`embeddings.batch_window_ms: 0\` for "off"`,
    '',
    '| mode | req/s (mean) | p50 ms | p99 ms | completed | non-2xx | errors | upstream calls | requests per call | mock peak in progress | batch triggers |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|',
    row(report.off),
    row(report.on),
    '',
    `Throughput with batching / without: **${report.ratio.toFixed(2)}×** (target ≥ ${TARGET_RATIO}×: ${metOrNot(report.met)})`,
    '',
    ...warningsMarkdown(report.warnings),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// Main

async function runBenchmark(argv: string[]): Promise<void> {
  const settings = readSettings(argv);
  await withWatchdog('bench-embeddings', BUDGET_MS, loads, children, async () => {
    const started = new Date();
    buildIfStale();
    const build = recallBuild();
    const { runId, nextBody } = distinctEmbeddingInputs();
    const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', [
      '--port', '0', '--latency-ms', String(settings.mockLatencyMs), '--max-concurrent', String(settings.maxConcurrent),
    ]);
    const measured: Partial<Record<Mode, Measurement>> = {};
    try {
      for (const mode of ['off', 'on'] as const) {
        const recall = await startRecallWith(mock, mode);
        try {
          measured[mode] = await measure(mode, recall, mock, settings, nextBody);
        } finally {
          await children.stop(recall.process);
        }
      }
    } finally {
      await children.stop(mock.process);
    }
    const off = measured.off as Measurement;
    const on = measured.on as Measurement;
    const ratio = on.requestsPerSecond / off.requestsPerSecond;
    const report: Report = {
      date: started.toISOString(),
      machine: machine(),
      command: commandLine('bench:embeddings', 'loadtest/bench-embeddings.ts', argv),
      recallBuild: build,
      runId,
      settings: { durationS: settings.durationS, warmupS: settings.warmupS, connections: settings.connections, mockLatencyMs: settings.mockLatencyMs, maxConcurrent: settings.maxConcurrent },
      off,
      on,
      ratio,
      met: ratio >= TARGET_RATIO,
      warnings: [...warningsOf(off), ...warningsOf(on)],
    };
    saveAndPrintReport('embeddings', started, report, reportMarkdown(report));
  });
}

runBenchmarkProcess('bench-embeddings', 'stopping the load, Recall and the mock', loads, children, () => runBenchmark(process.argv.slice(2)));
