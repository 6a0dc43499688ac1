// Coalescing benchmark: a storm of identical concurrent chat completions (1000 by default, one per connection) against
// Recall with coalescing on and off, in front of a mock upstream with a fixed latency. Reports the upstream calls each
// storm cost and its latency percentiles next to a single request's latency; prints Markdown and saves JSON.
//
//   npm run bench:coalesce -- [--storm 1000] [--storms 3] [--mock-latency-ms 300] [--singles 20]

import autocannon from 'autocannon';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildIfStale,
  ChildProcesses,
  commandLine,
  LoadGenerator,
  machine,
  mockControl,
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
} from './bench-harness.js';

const CHAT_ROUTE = 'POST /v1/chat/completions';
const CACHE_HEADER = 'x-recall-cache';
/** Bounds the whole run: start-up, the single requests and every storm on both targets. */
const BUDGET_MS = 5 * 60_000;

interface StormResult {
  target: string;
  requests: number;
  ok: number;
  upstreamCalls: number;
  outcomes: Record<string, number>;
  latency: LatencySummary;
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
  return JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: `bench coalesce ${Date.now()} ${++prompt}` }] });
}

async function upstreamCalls(mock: Server): Promise<number> {
  const stats = (await mockControl(mock, 'GET', '/mock/stats')) as { byRoute?: Record<string, number> };
  return stats.byRoute?.[CHAT_ROUTE] ?? 0;
}

/** One request at a time, each a miss: what a single request costs end to end. */
async function singleLatency(recall: Server): Promise<LatencySummary> {
  const latencies: number[] = [];
  for (let i = 0; i < settings.singles; i++) {
    const started = performance.now();
    const response = await fetch(`${recall.origin}/v1/chat/completions`, {
      method: 'POST', body: freshBody(), headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' },
    });
    await response.arrayBuffer();
    if (!response.ok) throw new Error(`single request answered ${response.status}`);
    latencies.push(performance.now() - started);
  }
  return summariseLatency(Float64Array.from(latencies));
}

/** `settings.storm` identical requests at once, one per connection. */
async function storm(target: Server, mock: Server): Promise<StormResult> {
  const before = await upstreamCalls(mock);
  const body = freshBody();
  const latencies: number[] = [];
  const outcomes: Record<string, number> = {};
  let ok = 0;
  const result = await new Promise<autocannon.Result>((resolve, reject) => {
    const instance = autocannon({
      url: target.origin,
      connections: settings.storm,
      amount: settings.storm,
      timeout: 30,
      headers: { 'content-type': 'application/json', authorization: 'Bearer sk-bench' },
      requests: [{
        method: 'POST', path: '/v1/chat/completions', body,
        onResponse: (status, _body, _context, headers) => {
          if (status === 200) ok++;
          const outcome = String(headers?.[CACHE_HEADER] ?? '(absent)');
          outcomes[outcome] = (outcomes[outcome] ?? 0) + 1;
        },
      }],
    }, (error: unknown, done: autocannon.Result) => (error ? reject(error instanceof Error ? error : new Error(String(error))) : resolve(done)));
    instance.on('response', (_client, _status, _bytes, responseTime) => latencies.push(responseTime));
  });
  if (result.errors > 0 || result.timeouts > 0) throw new Error(`storm on ${target.name}: ${result.errors} errors, ${result.timeouts} timeouts`);
  await sleep(200);
  return { target: target.name, requests: latencies.length, ok, upstreamCalls: (await upstreamCalls(mock)) - before, outcomes, latency: summariseLatency(Float64Array.from(latencies)) };
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
  const configDir = mkdtempSync(join(tmpdir(), 'recall-bench-coalesce-'));
  try {
    const offConfig = join(configDir, 'off.yaml');
    writeFileSync(offConfig, 'coalesce:\n  enabled: false\n');
    const report = await withWatchdog('bench-coalesce', BUDGET_MS, loads, children, async (): Promise<Report> => {
      const mock = await startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0', '--latency-ms', String(settings.mockLatencyMs)]);
      const on = await startRecall(children, { name: 'Recall, coalescing on (default)', upstreamBaseUrl: `${mock.origin}/v1` });
      const off = await startRecall(children, { name: 'Recall, coalescing off', upstreamBaseUrl: `${mock.origin}/v1`, env: { RECALL_CONFIG: offConfig } });
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
  } finally {
    rmSync(configDir, { recursive: true, force: true });
  }
}

runBenchmarkProcess('bench-coalesce', 'stopping', loads, children, main);
