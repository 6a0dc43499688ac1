// First benchmark of Recall's forwarding path: drives the mock upstream directly and through Recall with autocannon
// (distinct prompts, saturation and fixed-rate scenarios), then prints a Markdown report and saves it as JSON.
// The saturation and spread fixed-rate scenarios also go through loadtest/bare-proxy.ts, the floor any Node proxy costs.
//
//   npm run bench:forward -- [--duration 10] [--warmup 2] [--connections 50] [--rate 500] [--mock-latency-ms N]
//   npm run bench:forward -- --profile     (saturation through Recall only, under `node --cpu-prof`; prints top costs)

import { mkdirSync } from 'node:fs';
import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import {
  buildIfStale,
  CHAT_ROUTE,
  ChildProcesses,
  childCpuSeconds,
  commandLine,
  commonBenchSettings,
  LoadGenerator,
  machine,
  medianBusyMsPerSecond,
  metOrNot,
  mockControl,
  mockStats,
  distinctPrompts,
  ms,
  ownCpuSeconds,
  parseBenchFlags,
  positiveNumber,
  profileSummary,
  reportHeading,
  RESULTS_DIR,
  runBenchmarkProcess,
  saveAndPrintReport,
  startRecall,
  startScript,
  STARTUP_TIMEOUT_MS,
  summariseLatency,
  timestampForFile,
  warningsMarkdown,
  withWatchdog,
  type AutocannonLatency,
  type CommonBenchSettings,
  type LatencySummary,
  type LoadOptions,
  type LoadRun,
  type Server,
} from './bench-harness.js';

/** Time for requests cut off when autocannon stops to reach (or fail to reach) the mock before it is counted. */
const SETTLE_MS = 300;

// ---------------------------------------------------------------------------------------------------------------------
// Settings

interface BenchSettings extends CommonBenchSettings {
  /** Mock latencies to run the whole suite with; 0 always comes first. */
  mockLatenciesMs: number[];
}

function readSettings(argv: string[]): BenchSettings {
  const flags = parseBenchFlags(argv, ['mock-latency-ms']);
  const extraLatency = flags['mock-latency-ms'] === undefined ? [] : [positiveNumber('mock-latency-ms', flags['mock-latency-ms'], 0, 10_000)];
  return { ...commonBenchSettings(flags, 500), mockLatenciesMs: [0, ...extraLatency] };
}

/** Upper bound on the whole run; the watchdog stops everything past it. */
function timeBudgetMs(settings: BenchSettings): number {
  const perLoadRun = (settings.warmupS + settings.durationS) * 1_000 + 4 * SETTLE_MS + 2_000;
  const loadRunsPerPass = settings.profile ? 1 : 8;
  const passes = settings.mockLatenciesMs.length;
  return 90_000 + passes * (loadRunsPerPass * perLoadRun + 2 * STARTUP_TIMEOUT_MS);
}

// ---------------------------------------------------------------------------------------------------------------------
// Child processes: the mock upstream, the bare proxy and Recall, always stopped on exit, on error and on SIGINT

const children = new ChildProcesses();
/** Running autocannon instances, stopped on SIGINT or by the watchdog. */
const loads = new LoadGenerator();

function startMock(latencyMs: number): Promise<Server> {
  return startScript(children, 'mock upstream', 'mock-upstream.ts', ['--port', '0', '--latency-ms', String(latencyMs)]);
}

/** loadtest/bare-proxy.ts in front of the mock: node:http + one undici Pool, no logging, no framework. */
function startBareProxy(mock: Server): Promise<Server> {
  return startScript(children, 'bare proxy', 'bare-proxy.ts', ['--port', '0', '--upstream', mock.origin]);
}

/** Recall with default settings (log level info included), its stdout going to /dev/null. */
function startRecallOn(mock: Server, nodeFlags: string[]): Promise<Server> {
  return startRecall(children, { name: 'Recall', upstreamBaseUrl: `${mock.origin}/v1`, nodeFlags });
}

// ---------------------------------------------------------------------------------------------------------------------
// The mock's request counters

interface UpstreamCount {
  chat: number;
  aborted: number;
}

async function resetMock(mock: Server): Promise<void> {
  await sleep(SETTLE_MS);
  await mockControl(mock, 'POST', '/mock/reset');
}

async function upstreamCount(mock: Server): Promise<UpstreamCount> {
  await sleep(SETTLE_MS);
  const stats = await mockStats(mock);
  return { chat: stats.byRoute[CHAT_ROUTE] ?? 0, aborted: stats.aborted };
}

// ---------------------------------------------------------------------------------------------------------------------
// CPU time per process, to compare costs per request on a machine too noisy for absolute throughput

interface CpuSnapshot {
  client: number;
  mock: number;
  recall: number;
  bare: number;
}

function cpuSnapshot({ mock, recall, bare }: Processes): CpuSnapshot {
  return {
    client: ownCpuSeconds(),
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
// Measurements

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
  mock: Server;
  recall: Server;
  /** Not started under --profile. */
  bare?: Server | undefined;
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
  await loads.run({ ...load, origin, durationS: settings.warmupS });
  await resetMock(mock);
  const cpuBefore = cpuSnapshot(processes);
  const run = await loads.run({ ...load, origin, durationS: settings.durationS });
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
  let bare: Server | undefined;
  let recall: Server | undefined;
  try {
    bare = await startBareProxy(mock);
    recall = await startRecallOn(mock, []);
    const processes: Processes = { mock, bare, recall };
    const m = (target: Target, scenario: string, load: Omit<LoadOptions, 'origin' | 'durationS'>): Promise<Measurement> =>
      measure(target, scenario, processes, settings, load);
    const { connections, rate } = settings;
    const saturation = { connections, body: nextBody };
    const burst = { connections, overallRate: rate, body: nextBody };
    const spread = { connections, overallRate: rate, staggered: true, body: nextBody };
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
    if (recall !== undefined) await children.stop(recall.process);
    if (bare !== undefined) await children.stop(bare.process);
    await children.stop(mock.process);
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

function signedMs(value: number): string {
  return `${value >= 0 ? '+' : ''}${ms(value)}`;
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
  return [
    ...reportHeading('Recall forwarding benchmark', report.date, report, report.command),
    `- settings: warm-up ${settings.warmupS} s then ${settings.durationS} s per measurement, ${settings.connections} connections, ` +
      `fixed rate ${settings.rate} req/s, Recall defaults (log level ${report.settings.recallLogLevel}, stdout to /dev/null), every prompt distinct (run ${report.runId})`,
    `- latency: ${report.settings.latencyResolution}`,
    '',
    ...report.passes.flatMap((pass) => [passMarkdown(pass, settings), '']),
    ...warningsMarkdown(report.warnings),
  ].join('\n');
}

// ---------------------------------------------------------------------------------------------------------------------
// --profile: saturation through Recall under `node --cpu-prof`, then the top self-time functions

async function runProfile(settings: BenchSettings, nextBody: () => string): Promise<void> {
  const dir = join(RESULTS_DIR, `profile-${timestampForFile(new Date())}`);
  mkdirSync(dir, { recursive: true });
  const mock = await startMock(0);
  try {
    const recall = await startRecallOn(mock, ['--cpu-prof', '--cpu-prof-dir', dir]);
    try {
      const m = await measure('recall', 'saturation (profiled)', { mock, recall }, settings, { connections: settings.connections, body: nextBody });
      console.log(`through Recall under --cpu-prof: ${m.requestsPerSecond.toFixed(0)} req/s, p50 ${ms(m.latencyMs.p50)} ms, p99 ${ms(m.latencyMs.p99)} ms, non-2xx ${m.non2xx}, errors ${m.errors}`);
    } finally {
      // SIGTERM makes Recall drain and exit 0, which is when node writes the profile.
      await children.stop(recall.process);
    }
  } finally {
    await children.stop(mock.process);
  }
  console.log(`\n${profileSummary(dir, 25)}`);
}

// ---------------------------------------------------------------------------------------------------------------------
// Main

async function runBenchmark(argv: string[]): Promise<void> {
  const settings = readSettings(argv);
  await withWatchdog('bench-forward', timeBudgetMs(settings), loads, children, async () => {
    buildIfStale();
    const { runId, nextBody } = distinctPrompts();
    if (settings.profile) {
      await runProfile(settings, nextBody);
      return;
    }
    const started = new Date();
    const passes: PassResult[] = [];
    for (const mockLatencyMs of settings.mockLatenciesMs) passes.push(await runPass(settings, mockLatencyMs, nextBody));
    const { nproc, cpu, platform, node } = machine();
    const report: Report = {
      date: started.toISOString(),
      node,
      nproc,
      cpu,
      platform,
      command: commandLine('bench:forward', 'loadtest/bench-forward.ts', argv),
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
    saveAndPrintReport('forward', started, report, reportMarkdown(report, settings));
  });
}

runBenchmarkProcess('bench-forward', 'stopping the mock and Recall', loads, children, () => runBenchmark(process.argv.slice(2)));
