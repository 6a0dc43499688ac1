// The report of `npm run bench` (loadtest/bench.ts), as pure functions of its results: the ratios with their targets
// (met or not), the tables behind them, the charts of the curves, and the generated block of docs/BENCHMARKS.md.

import type { Chart } from './bench-chart.js';
import type { MachineLoad } from './bench-harness.js';

// ---------------------------------------------------------------------------------------------------------------------
// Results

/** One load run against one server. */
export interface Throughput {
  /** What was measured, e.g. "Recall hits from memory". */
  label: string;
  connections: number;
  requestsPerSecond: number;
  p50Ms: number;
  p99Ms: number;
  responses: number;
  non2xx: number;
  errors: number;
  /** Values of x-recall-cache over the responses; empty for servers that are not Recall. */
  cacheHeader: Record<string, number>;
}

/** The runs the ratios are made of (same connections, same run). */
export type ThroughputId =
  | 'ceiling' | 'memoryHits' | 'redisHits' | 'semanticHits' | 'direct' | 'recallMisses' | 'portkeyMisses' | 'embeddingsOff' | 'embeddingsOn'
  /** Misses through loadtest/bare-proxy.ts: what one more HTTP hop costs on the same cores, whatever the proxy does. */
  | 'bareProxyMisses'
  /** Hits through a Recall on Redis without its near cache: every hit a Redis round trip. */
  | 'redisHitsNoNearCache'
  /** Misses through a Recall with the semantic tier off: what the tier costs on the miss path. */
  | 'recallMissesNoSemantic'
  /** The mock at an LLM-like latency (SLOW_UPSTREAM_MS), directly and through Recall, at the curve's most connections. */
  | 'slowDirect' | 'recallSlowMisses';

export interface StormResult {
  coalescing: 'on' | 'off';
  requests: number;
  ok: number;
  upstreamCalls: number;
  p50Ms: number;
  p99Ms: number;
}

export interface FirstTokenResult {
  label: 'hit' | 'miss';
  requests: number;
  p50Ms: number;
  p99Ms: number;
}

export interface ConnectionsPoint {
  /** The server: "ceiling" or "Recall hits from memory". */
  series: string;
  connections: number;
  requestsPerSecond: number;
  p99Ms: number;
}

export interface CacheSizePoint {
  store: 'memory' | 'redis';
  entries: number;
  requestsPerSecond: number;
  p99Ms: number;
  /** Responses that were not HITs (should be 0: every request asks for a stored entry). */
  notHits: number;
  /**
   * Memory per entry: growth of Recall's resident memory over the next smaller store (the empty one for the first),
   * per added entry; for Redis, growth of its used_memory over the empty store, per entry.
   */
  bytesPerEntry: number;
}

/** The hit comparison's runs, round by round (the ceiling, memory hits and Redis hits take turns). */
export type HitRounds = Record<'ceiling' | 'memoryHits' | 'redisHits', Throughput[]>;

export interface BenchResults {
  throughput: Partial<Record<ThroughputId, Throughput>>;
  /** Present when the hit comparison ran more than one round; `throughput` then holds the rounds' means. */
  hitRounds?: HitRounds;
  storms: StormResult[];
  firstToken: FirstTokenResult[];
  connections: ConnectionsPoint[];
  cacheSize: CacheSizePoint[];
  /** Steps that did not run and why (out of time, --only, Portkey would not start…). */
  skipped: string[];
  warnings: string[];
}

export interface RunInfo {
  date: string;
  command: string;
  /** `npm run bench`, `--quick` or `--large`. */
  mode: 'default' | 'quick' | 'large';
  durationS: number;
  cores: number;
  cpuModel: string;
  node: string;
  recallCommit: string;
  /** Files under src/ that differ from that commit. */
  changedSources: string[];
  portkeyVersion: string;
  loadAtStart: MachineLoad;
  loadAtEnd: MachineLoad;
  /** Settings of the load runs, in words. */
  settings: string;
}

// ---------------------------------------------------------------------------------------------------------------------
// Ratios and targets

export interface Target {
  op: '≥' | '≤';
  value: number;
}

export interface RatioRow {
  what: string;
  /** The two numbers the ratio is made of, in words. */
  from: string;
  ratio: number | undefined;
  target: Target | undefined;
  status: 'met' | 'not met' | 'no target' | 'not measured';
}

/** a / b, or undefined when either is missing or b is not a positive number. */
export function ratioOf(a: number | undefined, b: number | undefined): number | undefined {
  if (a === undefined || b === undefined || !Number.isFinite(a) || !Number.isFinite(b) || b <= 0) return undefined;
  return a / b;
}

export function statusOf(ratio: number | undefined, target: Target | undefined): RatioRow['status'] {
  if (ratio === undefined) return 'not measured';
  if (target === undefined) return 'no target';
  return (target.op === '≥' ? ratio >= target.value : ratio <= target.value) ? 'met' : 'not met';
}

/** The issue's targets (ratios from the same run on this 2-core machine). */
export const TARGETS = {
  memoryHits: { op: '≥', value: 0.7 },
  redisHits: { op: '≥', value: 0.5 },
  misses: { op: '≥', value: 0.6 },
  /** Recall's miss throughput over Portkey's: higher. */
  missesOverPortkey: { op: '≥', value: 1 },
  /** Recall's miss p99 over Portkey's: lower. */
  missP99OverPortkey: { op: '≤', value: 1 },
  semanticHits: { op: '≥', value: 0.5 },
} as const satisfies Record<string, Target>;

function reqs(t: Throughput | undefined): string {
  return t === undefined ? 'not measured' : `${t.requestsPerSecond.toFixed(0)} req/s`;
}

/** Runs of one server in several rounds as one: mean throughput and percentiles, summed counts. */
export function meanOfRounds(runs: readonly Throughput[]): Throughput {
  const first = runs[0];
  if (first === undefined) throw new RangeError('no runs to merge');
  if (runs.length === 1) return first;
  const mean = (pick: (t: Throughput) => number) => runs.reduce((sum, t) => sum + pick(t), 0) / runs.length;
  const sum = (pick: (t: Throughput) => number) => runs.reduce((total, t) => total + pick(t), 0);
  const cacheHeader: Record<string, number> = {};
  for (const run of runs) for (const [value, count] of Object.entries(run.cacheHeader)) cacheHeader[value] = (cacheHeader[value] ?? 0) + count;
  return {
    label: `${first.label} (mean of ${runs.length} rounds)`, connections: first.connections,
    requestsPerSecond: mean((t) => t.requestsPerSecond), p50Ms: mean((t) => t.p50Ms), p99Ms: mean((t) => t.p99Ms),
    responses: sum((t) => t.responses), non2xx: sum((t) => t.non2xx), errors: sum((t) => t.errors), cacheHeader,
  };
}

/** One line per hit ratio with its value in each round, when there were several. */
export function hitRoundsMarkdown(results: BenchResults): string[] {
  const rounds = results.hitRounds;
  if (rounds === undefined) return [];
  const perRound = (hits: readonly Throughput[]) =>
    hits.map((t, i) => ratioOf(t.requestsPerSecond, rounds.ceiling[i]?.requestsPerSecond)).map((r) => (r === undefined ? 'n/a' : r.toFixed(3))).join(', ');
  return [
    `The ceiling, memory hits and Redis hits ran in ${rounds.ceiling.length} rounds, taking turns (the first before the other steps, the rest after them); ` +
      'the hit rows above are the means of the rounds. Per round, memory hits / ceiling: ' +
      `${perRound(rounds.memoryHits)}; Redis hits / ceiling: ${perRound(rounds.redisHits)}.`,
    '',
  ];
}

function p99(t: Throughput | undefined): string {
  return t === undefined ? 'not measured' : `p99 ${t.p99Ms.toFixed(2)} ms`;
}

function row(what: string, a: Throughput | undefined, b: Throughput | undefined, target: Target | undefined, pick: 'rps' | 'p99' = 'rps'): RatioRow {
  const value = (t: Throughput | undefined): number | undefined => (t === undefined ? undefined : pick === 'rps' ? t.requestsPerSecond : t.p99Ms);
  const describe = pick === 'rps' ? reqs : p99;
  const ratio = ratioOf(value(a), value(b));
  return { what, from: `${describe(a)} / ${describe(b)}`, ratio, target, status: statusOf(ratio, target) };
}

/** Every ratio of the report, in the issue's order: the five targets first, then the other comparisons. */
export function ratioRows(results: BenchResults): RatioRow[] {
  const t = results.throughput;
  const rows = [
    row('memory hits / ceiling', t.memoryHits, t.ceiling, TARGETS.memoryHits),
    row('Redis hits / ceiling', t.redisHits, t.ceiling, TARGETS.redisHits),
    row('Redis hits, near cache off / ceiling', t.redisHitsNoNearCache, t.ceiling, undefined),
    row('misses through Recall / mock direct', t.recallMisses, t.direct, TARGETS.misses),
    row('misses: Recall / Portkey throughput', t.recallMisses, t.portkeyMisses, TARGETS.missesOverPortkey),
    row('misses: Recall / Portkey p99', t.recallMisses, t.portkeyMisses, TARGETS.missP99OverPortkey, 'p99'),
    row('semantic hits / exact hits (memory)', t.semanticHits, t.memoryHits, TARGETS.semanticHits),
    row('misses through Portkey / mock direct', t.portkeyMisses, t.direct, undefined),
    row('misses through a bare proxy / mock direct', t.bareProxyMisses, t.direct, undefined),
    row('misses, semantic tier off / mock direct', t.recallMissesNoSemantic, t.direct, undefined),
    row('misses with a 300 ms upstream / mock direct', t.recallSlowMisses, t.slowDirect, undefined),
    row('embeddings, batching on / off', t.embeddingsOn, t.embeddingsOff, undefined),
  ];
  const stormOn = results.storms.find((s) => s.coalescing === 'on');
  const stormOff = results.storms.find((s) => s.coalescing === 'off');
  if (stormOn !== undefined && stormOff !== undefined) {
    const ratio = ratioOf(stormOn.upstreamCalls, stormOff.upstreamCalls);
    rows.push({ what: 'coalescing storm, upstream calls on / off', from: `${stormOn.upstreamCalls} / ${stormOff.upstreamCalls} calls for ${stormOn.requests} identical requests`, ratio, target: undefined, status: statusOf(ratio, undefined) });
  }
  const hit = results.firstToken.find((f) => f.label === 'hit');
  const miss = results.firstToken.find((f) => f.label === 'miss');
  if (hit !== undefined && miss !== undefined) {
    const ratio = ratioOf(hit.p50Ms, miss.p50Ms);
    rows.push({ what: 'stream time to first token, hit / miss (p50)', from: `${hit.p50Ms.toFixed(2)} ms / ${miss.p50Ms.toFixed(2)} ms`, ratio, target: undefined, status: statusOf(ratio, undefined) });
  }
  return rows;
}

// ---------------------------------------------------------------------------------------------------------------------
// Markdown

function signed(value: number): string {
  return `${value >= 0 ? '+' : '−'}${Math.abs(value).toFixed(2)}`;
}

/** The latency each gateway adds on the miss path, over calling the mock directly in the same run. */
export function addedLatencyMarkdown(results: BenchResults): string[] {
  const { direct, recallMisses, portkeyMisses } = results.throughput;
  if (direct === undefined) return [];
  const added = (name: string, t: Throughput | undefined): string =>
    t === undefined ? `${name} not measured` : `${name} ${signed(t.p50Ms - direct.p50Ms)} ms at p50, ${signed(t.p99Ms - direct.p99Ms)} ms at p99`;
  return [`Added latency on the miss path, over the mock called directly (at saturation): ${added('Recall', recallMisses)}; ${added('Portkey', portkeyMisses)}.`];
}

const STATUS_CELL: Record<RatioRow['status'], string> = { met: '**met**', 'not met': '**not met**', 'no target': '–', 'not measured': 'not measured' };

export function ratioTableMarkdown(rows: readonly RatioRow[]): string[] {
  return [
    '| ratio | measured | value | target | status |',
    '|---|---|---:|---:|---|',
    ...rows.map((r) => `| ${r.what} | ${r.from} | ${r.ratio === undefined ? '–' : r.ratio.toFixed(3)} | ${r.target === undefined ? '–' : `${r.target.op} ${r.target.value}`} | ${STATUS_CELL[r.status]} |`),
  ];
}

function ms(value: number): string {
  return Number.isFinite(value) ? value.toFixed(2) : 'n/a';
}

function tally(counts: Record<string, number>): string {
  const entries = Object.entries(counts).sort(([a], [b]) => a.localeCompare(b));
  return entries.length === 0 ? '–' : entries.map(([name, n]) => `${name} ${n}`).join(', ');
}

function machineLines(info: RunInfo): string[] {
  const busy = (load: MachineLoad): string => (load.busyProcesses.length === 0 ? 'none' : load.busyProcesses.map((p) => `\`${p.replace(/`/g, "'")}\``).join('; '));
  return [
    `- machine: ${info.cores} cores, ${info.cpuModel}; load average (1/5/15 min) at start ${info.loadAtStart.loadAverage.join(' / ')}, at end ${info.loadAtEnd.loadAverage.join(' / ')}`,
    `- other busy processes at start: ${busy(info.loadAtStart)}`,
    `- other busy processes at end: ${busy(info.loadAtEnd)}`,
    `- versions: Node ${info.node}, Recall commit ${info.recallCommit}${info.changedSources.length === 0 ? '' : ` with uncommitted changes to ${info.changedSources.join(', ')}`}, Portkey gateway ${info.portkeyVersion}`,
    `- command: \`${info.command}\` (${info.mode} run, ${info.durationS.toFixed(0)} s); ${info.settings}`,
  ];
}

/** The generated part of docs/BENCHMARKS.md; `chartFile` is the SVG's path relative to the document. */
export function reportMarkdown(info: RunInfo, results: BenchResults, chartFile: string): string {
  const t = results.throughput;
  const lines = [
    `## Latest \`npm run bench\` run (${info.date})`,
    '',
    'Generated by `npm run bench`; edits inside this block are overwritten. Only ratios within one run mean much: every',
    'server, the load generator and whatever else runs on the machine share its cores.',
    '',
    ...machineLines(info),
    '',
    ...ratioTableMarkdown(ratioRows(results)),
    '',
    ...hitRoundsMarkdown(results),
    ...addedLatencyMarkdown(results),
    '',
    '| run | connections | req/s | p50 ms | p99 ms | completed | non-2xx | errors | X-Recall-Cache |',
    '|---|---:|---:|---:|---:|---:|---:|---:|---|',
    ...Object.values(t).map((m) => `| ${m.label} | ${m.connections} | ${m.requestsPerSecond.toFixed(0)} | ${ms(m.p50Ms)} | ${ms(m.p99Ms)} | ${m.responses} | ${m.non2xx} | ${m.errors} | ${tally(m.cacheHeader)} |`),
  ];
  if (results.storms.length > 0) {
    lines.push('', '| coalescing storm | identical requests | answered 200 | upstream calls | p50 ms | p99 ms |', '|---|---:|---:|---:|---:|---:|');
    for (const s of results.storms) lines.push(`| coalescing ${s.coalescing} | ${s.requests} | ${s.ok} | ${s.upstreamCalls} | ${ms(s.p50Ms)} | ${ms(s.p99Ms)} |`);
  }
  if (results.firstToken.length > 0) {
    lines.push('', '| stream, time to first token | requests (one at a time) | p50 ms | p99 ms |', '|---|---:|---:|---:|');
    for (const f of results.firstToken) lines.push(`| ${f.label} | ${f.requests} | ${ms(f.p50Ms)} | ${ms(f.p99Ms)} |`);
  }
  lines.push('', `![Throughput and p99 against connections and cache size](${chartFile})`, '');
  if (results.connections.length > 0) {
    lines.push('| curve: connections | server | req/s | p99 ms |', '|---:|---|---:|---:|');
    for (const p of results.connections) lines.push(`| ${p.connections} | ${p.series} | ${p.requestsPerSecond.toFixed(0)} | ${ms(p.p99Ms)} |`);
    lines.push('');
  }
  if (results.cacheSize.length > 0) {
    lines.push('| curve: cache size | store | req/s | p99 ms | not HIT | bytes per entry ¹ |', '|---:|---|---:|---:|---:|---:|');
    for (const p of results.cacheSize) {
      lines.push(`| ${p.entries} | ${p.store} | ${p.requestsPerSecond.toFixed(0)} | ${ms(p.p99Ms)} | ${p.notHits} | ${Number.isFinite(p.bytesPerEntry) ? p.bytesPerEntry.toFixed(0) : 'n/a'} |`);
    }
    lines.push('', '¹ memory: growth of Recall\'s RSS over the next smaller store (the empty one first), per added entry, so noisy for small stores; ' +
      'Redis: growth of `used_memory` over the empty store, per entry. Every entry holds the same ' +
      'mock completion; requests pick a stored entry at random.', '');
  }
  if (results.skipped.length > 0) lines.push('**Not run**', '', ...results.skipped.map((s) => `- ${s}`), '');
  if (results.warnings.length > 0) lines.push('**Warnings**', '', ...results.warnings.map((w) => `- ${w}`), '');
  return lines.join('\n');
}

/** The charts of the curves: throughput and p99 against connections, and against cache size per store. */
export function curveCharts(results: BenchResults): Chart[] {
  const bySeries = <P>(points: readonly P[], name: (p: P) => string, x: (p: P) => number, y: (p: P) => number) => {
    const names = [...new Set(points.map(name))];
    return names.map((n) => ({ name: n, points: points.filter((p) => name(p) === n).map((p) => ({ x: x(p), y: y(p) })) }));
  };
  const c = results.connections;
  const s = results.cacheSize;
  return [
    { title: 'Throughput against connections', xLabel: 'connections', yLabel: 'req/s', logX: true, series: bySeries(c, (p) => p.series, (p) => p.connections, (p) => p.requestsPerSecond) },
    { title: 'p99 latency against connections', xLabel: 'connections', yLabel: 'p99 ms', logX: true, series: bySeries(c, (p) => p.series, (p) => p.connections, (p) => p.p99Ms) },
    { title: 'Hit throughput against cache size', xLabel: 'entries', yLabel: 'req/s', logX: true, series: bySeries(s, (p) => p.store, (p) => p.entries, (p) => p.requestsPerSecond) },
    { title: 'Hit p99 latency against cache size', xLabel: 'entries', yLabel: 'p99 ms', logX: true, series: bySeries(s, (p) => p.store, (p) => p.entries, (p) => p.p99Ms) },
  ];
}

// ---------------------------------------------------------------------------------------------------------------------
// The generated block of a hand-written document

export function blockMarkers(name: string): { begin: string; end: string } {
  return { begin: `<!-- ${name}:begin -->`, end: `<!-- ${name}:end -->` };
}

/**
 * `document` with the block `name` replaced by `content`; a document without that block gets it after the block
 * `after` when there is one, else after its first heading line (or at the top). Everything outside the markers is
 * kept as it is.
 */
export function replaceBlock(document: string, name: string, content: string, after?: string): string {
  const { begin, end } = blockMarkers(name);
  const block = `${begin}\n${content.trim()}\n${end}`;
  const from = document.indexOf(begin);
  const to = document.indexOf(end);
  if (from !== -1 && to > from) return document.slice(0, from) + block + document.slice(to + end.length);
  if (from !== -1 || to !== -1) throw new Error(`${name}: only one of ${begin} and ${end} is in the document`);
  const previous = after === undefined ? -1 : document.indexOf(blockMarkers(after).end);
  if (previous !== -1) {
    const at = previous + blockMarkers(after as string).end.length;
    return `${document.slice(0, at)}\n\n${block}${document.slice(at)}`;
  }
  const lines = document.split('\n');
  const heading = lines.findIndex((line) => line.startsWith('# '));
  if (heading === -1) return `${block}\n\n${document}`;
  return [...lines.slice(0, heading + 1), '', block, ...lines.slice(heading + 1)].join('\n');
}
