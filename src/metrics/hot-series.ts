// Counters and histograms for the metrics every request touches. prom-client resolves its labels on every call
// (an object per call, a label check, a hash string, a float turned into a bucket key): 1.8 µs of a cache hit's CPU
// in a profile, several calls per hit. Here a series is resolved once per label combination and then costs an
// addition or two.
// Both register on a prom-client Registry as metrics of their own, so /metrics, promtool and `getSingleMetric`
// see them as they saw prom-client's: same names, types, labels and text.
import type { Registry } from 'prom-client';

interface ExportedValue {
  labels: Record<string, string | number>;
  value: number;
  metricName?: string;
}

interface Exported {
  name: string;
  help: string;
  type: 'counter' | 'histogram';
  values: ExportedValue[];
  aggregator: 'sum';
}

interface HotMetricOptions<L extends string> {
  name: string;
  help: string;
  labelNames: readonly L[];
  registry: Registry;
}

/** Label combinations → their series; label values are bounded by the catalog, so the map is too. */
abstract class HotMetric<L extends string, S> {
  readonly name: string;
  readonly help: string;
  readonly labelNames: readonly L[];
  readonly aggregator = 'sum';
  protected readonly series = new Map<string, { labels: Record<string, string>; series: S }>();

  constructor(options: HotMetricOptions<L>) {
    this.name = options.name;
    this.help = options.help;
    this.labelNames = options.labelNames;
    // prom-client's Registry takes any metric with a name and get(); its own types only name its own classes.
    options.registry.registerMetric(this as never);
  }

  /** The series of these label values, in `labelNames` order. */
  labels(...values: string[]): S {
    const key = values.join('\u0000');
    let found = this.series.get(key);
    if (found === undefined) {
      if (values.length !== this.labelNames.length) throw new RangeError(`${this.name} takes ${this.labelNames.length} label values, got ${values.length}`);
      const labels = Object.fromEntries(this.labelNames.map((name, i) => [name, values[i]!]));
      found = { labels, series: this.newSeries() };
      this.series.set(key, found);
    }
    return found.series;
  }

  protected abstract newSeries(): S;
}

export class CounterSeries {
  value = 0;

  inc(amount = 1): void {
    this.value += amount;
  }
}

export class HotCounter<L extends string> extends HotMetric<L, CounterSeries> {
  readonly type = 'counter';

  get(): Exported {
    const values = [...this.series.values()].map(({ labels, series }) => ({ labels, value: series.value }));
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected newSeries(): CounterSeries {
    return new CounterSeries();
  }
}

export class HistogramSeries {
  /** Observations per bucket (not cumulative); the last slot is above every bound. */
  readonly counts: Float64Array;
  sum = 0;
  count = 0;

  constructor(private readonly bounds: readonly number[]) {
    this.counts = new Float64Array(bounds.length + 1);
  }

  observe(value: number): void {
    const bounds = this.bounds;
    let i = 0;
    while (i < bounds.length && value > bounds[i]!) i++;
    this.counts[i]!++;
    this.sum += value;
    this.count++;
  }
}

export class HotHistogram<L extends string> extends HotMetric<L, HistogramSeries> {
  readonly type = 'histogram';
  private readonly buckets: readonly number[];

  constructor(options: HotMetricOptions<L> & { buckets: readonly number[] }) {
    super(options);
    this.buckets = [...options.buckets].sort((a, b) => a - b);
  }

  get(): Exported {
    const values: ExportedValue[] = [];
    for (const { labels, series } of this.series.values()) {
      let cumulative = 0;
      this.buckets.forEach((bound, i) => {
        cumulative += series.counts[i]!;
        values.push({ labels: { le: bound, ...labels }, value: cumulative, metricName: `${this.name}_bucket` });
      });
      values.push({ labels: { le: '+Inf', ...labels }, value: series.count, metricName: `${this.name}_bucket` });
      values.push({ labels, value: series.sum, metricName: `${this.name}_sum` });
      values.push({ labels, value: series.count, metricName: `${this.name}_count` });
    }
    return { name: this.name, help: this.help, type: this.type, values, aggregator: this.aggregator };
  }

  protected newSeries(): HistogramSeries {
    return new HistogramSeries(this.buckets);
  }
}
