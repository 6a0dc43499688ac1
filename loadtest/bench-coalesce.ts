// Coalescing benchmark: a storm of identical concurrent chat completions (1000 by default, one per connection) against
// Recall with coalescing on and off, in front of a mock upstream with a fixed latency. Reports the upstream calls each
// storm cost and its latency percentiles next to a single request's latency; prints Markdown and saves JSON.
//
//   npm run bench:coalesce -- [--storm 1000] [--storms 3] [--mock-latency-ms 300] [--singles 20]

import {
  BENCH_HEADERS,
  buildIfStale,
  chatBody,
  identicalStorm,
  ChildProcesses,
  commandLine,
  LoadGenerator,
  machine,
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
  type LatencySummary,
  type Server,
  type Storm,
} from './bench-harness.js';

/** Bounds the whole run: start-up, the single requests and every storm on both targets. */
const BUDGET_MS = 5 * 60_000;

interface StormResult extends Storm {
  target: string;
}

interface Report {
  startedAt: string;
  command: string;
  machine: ReturnType<typeof machine>;
  recall: ReturnType<typeof recallBuild>;
  settings: { storm: number; storms: number; mockLatencyMs: number; singles: number };
  single: LatencySummary;
  storms: StormResult[];
  warnings: string[];
}

const flags = parseBenchFlags(process.argv.slice(2), ['storm', 'storms', 'mock-latency-ms', 'singles'] as const);
const settings = {
  storm: positiveNumber('storm', flags.storm, 1000, 5000),
  storms: positiveNumber('storms', flags.storms, 3, 20),
  mockLatencyMs: positiveNumber('mock-latency-ms', flags['mock-latency-ms'], 300, 10_000),
  singles: positiveNumber('singles', flags.singles, 20, 1000),
};
const children = new ChildProcesses();
const loads = new LoadGenerator();
let prompt = 0;

/** A prompt nobody asked before, so that a storm starts with a miss. */
function freshBody(): string {
  return chatBody(`bench coalesce ${Date.now()} ${++prompt}`);
}

/** One request at a time, each a miss: what a single request costs end to end. */
async function singleLatency(recall: Server): Promise<LatencySummary> {
  const latencies: number[] = [];
  for (let i = 0; i < settings.singles; i++) {
    const started = performance.now();
    const response = await fetch(`${recall.origin}/v1/chat/completions`, {
      method: 'POST', body: freshBody(), headers: BENCH_HEADERS,
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`single request answered ${response.status}`);
    latencies.push(performance.now() - started);
  }
  return summariseLatency(Float64Array.from(latencies));
}

/** `settings.storm` identical requests at once, one per connection. */
async function storm(target: Server, mock: Server): Promise<StormResult> {
  return { target: target.name, ...(await identicalStorm(target, mock, settings.storm, freshBody())) };
}

function markdown(report: Report): string {
  const lines = reportHeading('Coalescing storm', report.startedAt, report.machine, report.command);
  lines.push(`- Recall commit ${report.recall.commit}${report.recall.changedSources.length > 0 ? ` with uncommitted changes to ${report.recall.changedSources.join(', ')}` : ''}`);
  lines.push(`- mock upstream latency ${report.settings.mockLatencyMs} ms; ${report.settings.storms} storms of ${report.settings.storm} identical requests per target, one request per connection`, '');
  const single = report.single;
  lines.push(`A single request (${report.settings.singles} one after another, each a miss): p50 **${ms(single.p50)} ms**, p99 **${ms(single.p99)} ms**.`, '');
  lines.push('| target | storm | answered 200 | upstream calls | X-Recall-Cache | p50 ms | p99 ms | max ms | p99 / single p50 |', '|---|---:|---:|---:|---|---:|---:|---:|---:|');
  report.storms.forEach((s, i) => {
    const outcomes = Object.entries(s.outcomes).sort().map(([name, n]) => `${name} ${n}`).join(', ');
    lines.push(`| ${s.target} | ${i % report.settings.storms + 1} | ${s.ok} of ${s.requests} | ${s.upstreamCalls} | ${outcomes} | ${ms(s.latency.p50)} | ${ms(s.latency.p99)} | ${ms(s.latency.max)} | ${(s.latency.p99 / single.p50).toFixed(2)} |`);
  });
  lines.push('', ...warningsMarkdown(report.warnings));
  return lines.join('\n');
}

async function main(): Promise<void> {
  const started = new Date();
  buildIfStale();
  const report = await withWatchdog('bench-coalesce', BUDGET_MS, loads, children, async (): Promise<Report> => {
    const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0', '--latency-ms', String(settings.mockLatencyMs)]);
    const on = await startRecall(children, { name: 'Recall, coalescing on (default)', upstreamBaseUrl: `${mock.origin}/v1` });
    const off = await startRecall(children, { name: 'Recall, coalescing off', upstreamBaseUrl: `${mock.origin}/v1`, configYaml: 'coalesce:\n  enabled: false\n' });
    const single = await singleLatency(on);
    const storms: StormResult[] = [];
    for (const target of [on, off]) for (let i = 0; i < settings.storms; i++) storms.push(await storm(target, mock));
    for (const server of [on, off, mock]) await children.stop(server.process);
    const warnings = storms.filter((s) => s.ok !== s.requests).map((s) => `${s.target}: ${s.requests - s.ok} answers were not 200`);
    return {
      startedAt: started.toISOString(), command: commandLine('bench:coalesce', 'loadtest/bench-coalesce.ts', process.argv.slice(2)),
      machine: machine(), recall: recallBuild(), settings, single, storms, warnings,
    };
  });
  saveAndPrintReport('coalesce', started, report, markdown(report));
}

runBenchmarkProcess('bench-coalesce', 'stopping', loads, children, main);
