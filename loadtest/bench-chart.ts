// Line charts as hand-written SVG for the benchmark report (no chart library): panels of series over a linear or
// logarithmic x axis, laid out in a grid, with axes, ticks, a legend and the points marked.

export interface Point {
  x: number;
  y: number;
}

export interface Series {
  name: string;
  points: Point[];
}

export interface Chart {
  title: string;
  xLabel: string;
  yLabel: string;
  /** A logarithmic x axis (connections, cache sizes); x values must then be > 0. */
  logX?: boolean;
  series: Series[];
}

export interface Layout {
  columns: number;
  panelWidth: number;
  panelHeight: number;
}

const DEFAULT_LAYOUT: Layout = { columns: 2, panelWidth: 480, panelHeight: 300 };
const MARGIN = { left: 64, right: 16, top: 48, bottom: 46 };
const COLOURS = ['#1f77b4', '#d62728', '#2ca02c', '#ff7f0e', '#9467bd', '#8c564b'];
const Y_TICKS = 5;

/** Text safe inside an SVG element or attribute. */
export function escapeXml(text: string): string {
  return text.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c] as string);
}

/** A short label: 1k, 100k, 1M, 12.5k, 0.25. */
export function compactNumber(value: number): string {
  const abs = Math.abs(value);
  const trim = (n: number): string => String(Number(n.toPrecision(3)));
  if (abs >= 1e6) return `${trim(value / 1e6)}M`;
  if (abs >= 1e3) return `${trim(value / 1e3)}k`;
  return trim(value);
}

/** The smallest 1, 2 or 5 × 10^n step that cuts [0, max] into at most `ticks` intervals. */
function niceStep(max: number, ticks: number): number {
  const raw = max / ticks;
  const magnitude = 10 ** Math.floor(Math.log10(raw));
  return ([1, 2, 5, 10].map((m) => m * magnitude).find((step) => step >= raw) ?? 10 * magnitude);
}

function panel(chart: Chart, width: number, height: number): string[] {
  const plotW = width - MARGIN.left - MARGIN.right;
  const plotH = height - MARGIN.top - MARGIN.bottom;
  const series = chart.series.map((s) => ({ ...s, points: s.points.filter((p) => Number.isFinite(p.x) && Number.isFinite(p.y) && (!chart.logX || p.x > 0)) }));
  const all = series.flatMap((s) => s.points);
  const out = [`<text x="${width / 2}" y="20" text-anchor="middle" font-size="14" font-weight="bold">${escapeXml(chart.title)}</text>`];
  out.push(`<rect x="${MARGIN.left}" y="${MARGIN.top}" width="${plotW}" height="${plotH}" fill="none" stroke="#999"/>`);
  if (all.length === 0) {
    out.push(`<text x="${MARGIN.left + plotW / 2}" y="${MARGIN.top + plotH / 2}" text-anchor="middle" font-size="13" fill="#666">not measured</text>`);
    return out;
  }
  const xs = [...new Set(all.map((p) => p.x))].sort((a, b) => a - b);
  const fx = chart.logX ? Math.log10 : (v: number) => v;
  const [x0, x1] = [fx(xs[0] as number), fx(xs[xs.length - 1] as number)];
  const xPos = (x: number): number => MARGIN.left + (x1 === x0 ? plotW / 2 : ((fx(x) - x0) / (x1 - x0)) * plotW);
  const step = niceStep(Math.max(...all.map((p) => p.y), Number.MIN_VALUE), Y_TICKS);
  const yMax = step * Math.ceil(Math.max(...all.map((p) => p.y)) / step || 1);
  const yPos = (y: number): number => MARGIN.top + plotH - (y / yMax) * plotH;
  for (let y = 0; y <= yMax + step / 2; y += step) {
    out.push(`<line x1="${MARGIN.left}" x2="${MARGIN.left + plotW}" y1="${yPos(y).toFixed(1)}" y2="${yPos(y).toFixed(1)}" stroke="#e5e5e5"/>`);
    out.push(`<text x="${MARGIN.left - 6}" y="${(yPos(y) + 4).toFixed(1)}" text-anchor="end" font-size="11">${compactNumber(y)}</text>`);
  }
  for (const x of xs) {
    out.push(`<line x1="${xPos(x).toFixed(1)}" x2="${xPos(x).toFixed(1)}" y1="${MARGIN.top + plotH}" y2="${MARGIN.top + plotH + 4}" stroke="#999"/>`);
    out.push(`<text x="${xPos(x).toFixed(1)}" y="${MARGIN.top + plotH + 16}" text-anchor="middle" font-size="11">${compactNumber(x)}</text>`);
  }
  out.push(`<text x="${MARGIN.left + plotW / 2}" y="${height - 8}" text-anchor="middle" font-size="12">${escapeXml(chart.xLabel)}${chart.logX ? ' (log scale)' : ''}</text>`);
  out.push(`<text transform="translate(14 ${MARGIN.top + plotH / 2}) rotate(-90)" text-anchor="middle" font-size="12">${escapeXml(chart.yLabel)}</text>`);
  const legend: string[] = [];
  let legendX = MARGIN.left;
  series.forEach((s, i) => {
    const colour = COLOURS[i % COLOURS.length] as string;
    const points = [...s.points].sort((a, b) => a.x - b.x);
    const coords = points.map((p) => `${xPos(p.x).toFixed(1)},${yPos(p.y).toFixed(1)}`);
    if (coords.length > 1) out.push(`<polyline points="${coords.join(' ')}" fill="none" stroke="${colour}" stroke-width="2"/>`);
    for (const c of coords) {
      const [cx, cy] = c.split(',');
      out.push(`<circle cx="${cx}" cy="${cy}" r="3" fill="${colour}"/>`);
    }
    // One row between the title and the plot, so that it never hides a point.
    legend.push(`<line x1="${legendX}" x2="${legendX + 16}" y1="34" y2="34" stroke="${colour}" stroke-width="2"/>`);
    legend.push(`<text x="${legendX + 20}" y="38" font-size="11">${escapeXml(s.name)}</text>`);
    legendX += 36 + 6.5 * s.name.length;
  });
  return [...out, ...legend];
}

/** One SVG document holding every chart, `columns` to a row. */
export function chartsSvg(charts: readonly Chart[], layout: Partial<Layout> = {}): string {
  const { columns, panelWidth, panelHeight } = { ...DEFAULT_LAYOUT, ...layout };
  const rows = Math.max(1, Math.ceil(charts.length / columns));
  const width = Math.min(columns, Math.max(1, charts.length)) * panelWidth;
  const height = rows * panelHeight;
  const body = charts.flatMap((chart, i) => {
    const x = (i % columns) * panelWidth;
    const y = Math.floor(i / columns) * panelHeight;
    return [`<g transform="translate(${x} ${y})">`, ...panel(chart, panelWidth, panelHeight).map((line) => `  ${line}`), '</g>'];
  });
  return [
    `<svg xmlns="http://www.w3.org/2000/svg" width="${width}" height="${height}" viewBox="0 0 ${width} ${height}" font-family="sans-serif">`,
    `<rect width="${width}" height="${height}" fill="#fff"/>`,
    ...body,
    '</svg>',
    '',
  ].join('\n');
}
