// The pure parts of `npm run bench`: ratios and targets (met / not met / not measured), the report's tables, the
// generated block of docs/BENCHMARKS.md and the hand-written SVG chart.
import { describe, expect, it } from 'vitest';
import { chartsSvg, compactNumber, escapeXml } from '../../loadtest/bench-chart.js';
import type { MachineLoad } from '../../loadtest/bench-harness.js';
import {
  addedLatencyMarkdown,
  curveCharts,
  hitRoundsMarkdown,
  meanOfRounds,
  ratioOf,
  ratioRows,
  replaceBlock,
  reportMarkdown,
  statusOf,
  type BenchResults,
  type RunInfo,
  type Throughput,
} from '../../loadtest/bench-report.js';

function run(label: string, requestsPerSecond: number, p99Ms: number, p50Ms = p99Ms / 4): Throughput {
  return { label, connections: 50, requestsPerSecond, p50Ms, p99Ms, responses: requestsPerSecond * 5, non2xx: 0, errors: 0, cacheHeader: {} };
}

function results(overrides: Partial<BenchResults> = {}): BenchResults {
  return {
    throughput: {
      ceiling: run('ceiling', 20_000, 5),
      memoryHits: run('memory', 15_000, 6),
      redisHits: run('redis', 9_000, 8),
      semanticHits: run('semantic', 6_000, 12),
      direct: run('direct', 10_000, 4, 1),
      recallMisses: run('recall misses', 7_000, 9, 3),
      portkeyMisses: run('portkey misses', 1_000, 40, 30),
    },
    storms: [],
    firstToken: [],
    connections: [],
    cacheSize: [],
    skipped: [],
    warnings: [],
    ...overrides,
  };
}

const LOAD: MachineLoad = { at: '2026-11-26T12:00:00Z', loadAverage: [1.5, 1.2, 1], busyProcesses: ['0.50 cores: node other.js'] };

const INFO: RunInfo = {
  date: '2026-11-26T12:00:00Z',
  command: 'npm run bench -- --quick',
  mode: 'quick',
  durationS: 55,
  cores: 2,
  cpuModel: 'Test CPU',
  node: 'v20.0.0',
  recallCommit: 'abc1234',
  changedSources: [],
  portkeyVersion: '1.15.2',
  loadAtStart: LOAD,
  loadAtEnd: { ...LOAD, loadAverage: [3, 2, 1] },
  settings: '50 connections',
};

describe('ratios and targets', () => {
  it('divides only finite numbers by a positive one', () => {
    expect(ratioOf(3, 4)).toBe(0.75);
    expect(ratioOf(3, 0)).toBeUndefined();
    expect(ratioOf(undefined, 4)).toBeUndefined();
    expect(ratioOf(Number.NaN, 4)).toBeUndefined();
  });

  it('meets a ≥ target at the bound and a ≤ target at the bound, and misses just past it', () => {
    expect(statusOf(0.7, { op: '≥', value: 0.7 })).toBe('met');
    expect(statusOf(0.6999, { op: '≥', value: 0.7 })).toBe('not met');
    expect(statusOf(1, { op: '≤', value: 1 })).toBe('met');
    expect(statusOf(1.01, { op: '≤', value: 1 })).toBe('not met');
    expect(statusOf(undefined, { op: '≥', value: 0.7 })).toBe('not measured');
    expect(statusOf(2, undefined)).toBe('no target');
  });

  it('computes the issue’s targets from the same run', () => {
    const rows = ratioRows(results());
    const byName = Object.fromEntries(rows.map((r) => [r.what, r]));
    expect(byName['memory hits / ceiling']).toMatchObject({ ratio: 0.75, status: 'met' });
    expect(byName['Redis hits / ceiling']).toMatchObject({ ratio: 0.45, status: 'not met' });
    expect(byName['misses through Recall / mock direct']).toMatchObject({ ratio: 0.7, status: 'met' });
    expect(byName['misses: Recall / Portkey throughput']).toMatchObject({ ratio: 7, status: 'met' });
    expect(byName['misses: Recall / Portkey p99']).toMatchObject({ ratio: 9 / 40, status: 'met' });
    expect(byName['semantic hits / exact hits (memory)']).toMatchObject({ ratio: 0.4, status: 'not met' });
  });

  it('sets Redis hits without the near cache, and the miss path beside a bare proxy, the semantic tier off and a slow upstream, without targets', () => {
    const rows = ratioRows(results({
      throughput: {
        ...results().throughput,
        bareProxyMisses: run('bare', 4_000, 6),
        recallMissesNoSemantic: run('no semantic', 2_500, 8),
        slowDirect: run('slow direct', 600, 320),
        recallSlowMisses: run('slow recall', 540, 340),
        redisHitsNoNearCache: run('redis without near cache', 7_000, 9),
      },
    }));
    const byName = Object.fromEntries(rows.map((r) => [r.what, r]));
    expect(byName['Redis hits, near cache off / ceiling']).toMatchObject({ ratio: 0.35, status: 'no target' });
    expect(byName['misses through a bare proxy / mock direct']).toMatchObject({ ratio: 0.4, status: 'no target' });
    expect(byName['misses, semantic tier off / mock direct']).toMatchObject({ ratio: 0.25, status: 'no target' });
    expect(byName['misses with a 300 ms upstream / mock direct']).toMatchObject({ ratio: 0.9, status: 'no target' });
    // Not run: said so, not left out.
    expect(ratioRows(results()).find((r) => r.what === 'misses through a bare proxy / mock direct')?.status).toBe('not measured');
  });

  it('says "not measured" for a comparison whose run is missing (Portkey did not start)', () => {
    const { portkeyMisses: _, ...throughput } = results().throughput;
    const rows = ratioRows(results({ throughput }));
    const portkey = rows.filter((r) => r.what.includes('Portkey'));
    expect(portkey.map((r) => r.status)).toEqual(['not measured', 'not measured', 'not measured']);
    expect(portkey[0]?.from).toContain('not measured');
  });

  it('adds the storm and time-to-first-token comparisons once both sides ran', () => {
    const rows = ratioRows(results({
      storms: [
        { coalescing: 'on', requests: 100, ok: 100, upstreamCalls: 1, p50Ms: 300, p99Ms: 310 },
        { coalescing: 'off', requests: 100, ok: 100, upstreamCalls: 100, p50Ms: 320, p99Ms: 400 },
      ],
      firstToken: [{ label: 'hit', requests: 10, p50Ms: 1, p99Ms: 2 }, { label: 'miss', requests: 10, p50Ms: 4, p99Ms: 8 }],
    }));
    expect(rows.find((r) => r.what.startsWith('coalescing'))).toMatchObject({ ratio: 0.01, status: 'no target' });
    expect(rows.find((r) => r.what.startsWith('stream time'))).toMatchObject({ ratio: 0.25 });
  });
});

describe('report', () => {
  it('marks each target met or not met in the table, with the machine, versions and command', () => {
    const markdown = reportMarkdown(INFO, results(), 'bench-curves.svg');
    expect(markdown).toContain('| memory hits / ceiling | 15000 req/s / 20000 req/s | 0.750 | ≥ 0.7 | **met** |');
    expect(markdown).toContain('| Redis hits / ceiling | 9000 req/s / 20000 req/s | 0.450 | ≥ 0.5 | **not met** |');
    expect(markdown).toContain('2 cores, Test CPU; load average (1/5/15 min) at start 1.5 / 1.2 / 1, at end 3 / 2 / 1');
    expect(markdown).toContain('`0.50 cores: node other.js`');
    expect(markdown).toContain('Node v20.0.0, Recall commit abc1234');
    expect(markdown).toContain('`npm run bench -- --quick`');
    expect(markdown).toContain('![Throughput and p99 against connections and cache size](bench-curves.svg)');
  });

  it('lists the steps that did not run', () => {
    const markdown = reportMarkdown(INFO, results({ skipped: ['portkey: npx exited (1)'] }), 'c.svg');
    expect(markdown).toContain('**Not run**\n\n- portkey: npx exited (1)');
  });

  it('gives the latency each gateway adds over the mock called directly', () => {
    expect(addedLatencyMarkdown(results())[0]).toBe(
      'Added latency on the miss path, over the mock called directly (at saturation): Recall +2.00 ms at p50, +5.00 ms at p99; Portkey +29.00 ms at p50, +36.00 ms at p99.',
    );
  });
});

describe('generated block of a hand-written document', () => {
  const doc = '# Benchmarks\n\nIntro.\n\n## Hand-written\n\nKept.\n';

  it('goes after the first heading the first time, and replaces only itself the next time', () => {
    const once = replaceBlock(doc, 'bench', 'first run');
    expect(once).toBe('# Benchmarks\n\n<!-- bench:begin -->\nfirst run\n<!-- bench:end -->\n\nIntro.\n\n## Hand-written\n\nKept.\n');
    const twice = replaceBlock(once, 'bench', 'second run');
    expect(twice).toBe(once.replace('first run', 'second run'));
  });

  it('puts a new block after another one when asked to', () => {
    const both = replaceBlock(replaceBlock(doc, 'bench', 'A'), 'bench-soak', 'B', 'bench');
    expect(both).toBe('# Benchmarks\n\n<!-- bench:begin -->\nA\n<!-- bench:end -->\n\n<!-- bench-soak:begin -->\nB\n<!-- bench-soak:end -->\n\nIntro.\n\n## Hand-written\n\nKept.\n');
  });

  it('keeps two blocks apart', () => {
    const both = replaceBlock(replaceBlock(doc, 'bench', 'A'), 'bench-soak', 'B', 'bench');
    expect(replaceBlock(both, 'bench', 'C')).toContain('<!-- bench-soak:begin -->\nB\n<!-- bench-soak:end -->');
    expect(replaceBlock(both, 'bench', 'C')).toContain('<!-- bench:begin -->\nC\n<!-- bench:end -->');
  });

  it('refuses a document with only one of the two markers', () => {
    expect(() => replaceBlock('# B\n<!-- bench:begin -->\nx\n', 'bench', 'y')).toThrow(/only one of/);
  });
});

describe('SVG chart', () => {
  const chart = {
    title: 'Throughput <against> connections',
    xLabel: 'connections',
    yLabel: 'req/s',
    logX: true,
    series: [
      { name: 'ceiling', points: [{ x: 1, y: 3_000 }, { x: 10, y: 15_000 }, { x: 200, y: 17_000 }] },
      { name: 'Recall & memory', points: [{ x: 1, y: 2_000 }, { x: 10, y: Number.NaN }, { x: 200, y: 9_000 }] },
    ],
  };

  it('draws each series as a line through its finite points, with a legend and escaped text', () => {
    const svg = chartsSvg([chart]);
    expect(svg.startsWith('<svg xmlns="http://www.w3.org/2000/svg"')).toBe(true);
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true);
    const polylines = [...svg.matchAll(/<polyline points="([^"]+)"/g)].map((m) => (m[1] as string).split(' ').length);
    expect(polylines).toEqual([3, 2]);
    expect(svg.match(/<circle /g)).toHaveLength(5);
    expect(svg).toContain('Throughput &lt;against&gt; connections');
    expect(svg).toContain('>Recall &amp; memory<');
    expect(svg).toContain('connections (log scale)');
    for (const tick of ['>1<', '>10<', '>200<', '>20k<']) expect(svg).toContain(tick);
  });

  it('places x on a log scale: 10 sits at a third of the way from 1 to 1000', () => {
    const svg = chartsSvg([{ title: 't', xLabel: 'x', yLabel: 'y', logX: true, series: [{ name: 's', points: [{ x: 1, y: 1 }, { x: 10, y: 1 }, { x: 1_000, y: 1 }] }] }], { columns: 1, panelWidth: 400 });
    const xs = [...svg.matchAll(/<circle cx="([\d.]+)"/g)].map((m) => Number(m[1]));
    expect(xs).toHaveLength(3);
    expect(((xs[1] as number) - (xs[0] as number)) / ((xs[2] as number) - (xs[0] as number))).toBeCloseTo(1 / 3, 2);
  });

  it('lays panels out in a grid and says "not measured" for an empty one', () => {
    const svg = chartsSvg([chart, { ...chart, series: [] }, chart], { columns: 2, panelWidth: 300, panelHeight: 200 });
    expect(svg).toContain('width="600" height="400"');
    expect(svg).toContain('<g transform="translate(300 0)">');
    expect(svg).toContain('<g transform="translate(0 200)">');
    expect(svg).toContain('>not measured<');
  });

  it('makes one panel per curve from the results', () => {
    const charts = curveCharts(results({
      connections: [{ series: 'ceiling', connections: 1, requestsPerSecond: 10, p99Ms: 1 }, { series: 'ceiling', connections: 10, requestsPerSecond: 20, p99Ms: 2 }],
      cacheSize: [{ store: 'memory', entries: 1_000, requestsPerSecond: 5, p99Ms: 3, notHits: 0, bytesPerEntry: 900 }],
    }));
    expect(charts.map((c) => c.title)).toEqual(['Throughput against connections', 'p99 latency against connections', 'Hit throughput against cache size', 'Hit p99 latency against cache size']);
    expect(charts[0]?.series).toEqual([{ name: 'ceiling', points: [{ x: 1, y: 10 }, { x: 10, y: 20 }] }]);
    expect(charts[2]?.series).toEqual([{ name: 'memory', points: [{ x: 1_000, y: 5 }] }]);
  });

  it('writes numbers short', () => {
    expect([compactNumber(1_000), compactNumber(100_000), compactNumber(1_000_000), compactNumber(12_500), compactNumber(0.25)]).toEqual(['1k', '100k', '1M', '12.5k', '0.25']);
    expect(escapeXml(`a<b>&"'`)).toBe('a&lt;b&gt;&amp;&quot;&apos;');
  });
});

describe('hit rounds', () => {
  it('merges a server’s rounds into means and sums, and lists each round’s ratios', () => {
    const ceiling = [run('ceiling', 20_000, 4, 1), run('ceiling', 10_000, 8, 2)];
    const memoryHits = [run('memory', 15_000, 6, 2), run('memory', 6_000, 10, 3)];
    const redisHits = [run('redis', 9_000, 8, 2), run('redis', 5_000, 12, 4)];
    const merged = meanOfRounds(memoryHits);
    expect(merged).toMatchObject({ label: 'memory (mean of 2 rounds)', requestsPerSecond: 10_500, p50Ms: 2.5, p99Ms: 8, responses: 105_000 });
    expect(meanOfRounds([ceiling[0]!])).toBe(ceiling[0]);
    expect(() => meanOfRounds([])).toThrow(RangeError);
    const throughput = { ...results().throughput, ceiling: meanOfRounds(ceiling), memoryHits: merged, redisHits: meanOfRounds(redisHits) };
    const withRounds = results({ throughput, hitRounds: { ceiling, memoryHits, redisHits } });
    expect(ratioRows(withRounds).find((r) => r.what === 'memory hits / ceiling')?.ratio).toBe(10_500 / 15_000);
    expect(hitRoundsMarkdown(withRounds)[0]).toContain('memory hits / ceiling: 0.750, 0.600; Redis hits / ceiling: 0.450, 0.500.');
    expect(reportMarkdown(INFO, withRounds, 'c.svg')).toContain('ran in 2 rounds, taking turns');
    expect(hitRoundsMarkdown(results())).toEqual([]);
  });
});
