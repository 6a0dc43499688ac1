import { Counter, Histogram, Registry } from 'prom-client';
import { describe, expect, it } from 'vitest';
import { HotCounter, HotHistogram } from '../../../src/metrics/hot-series.js';

/** The same observations through prom-client and through the hot series must scrape to the same text. */
describe('hot series', () => {
  const buckets = [0.001, 0.01, 0.1, 1];
  const observations: [string, string, number][] = [
    ['/v1/chat/completions', 'HIT', 0.0004], ['/v1/chat/completions', 'HIT', 0.001], ['/v1/chat/completions', 'MISS', 0.2],
    ['/v1/embeddings', 'MISS', 3], ['/v1/chat/completions', 'HIT', 0.05], ['/v1/embeddings', 'MISS', 0.01],
  ];

  it('a histogram scrapes exactly as prom-client writes it', async () => {
    const reference = new Registry();
    const theirs = new Histogram({ name: 'x_seconds', help: 'Some help.', labelNames: ['route', 'cache'], buckets, registers: [reference] });
    const registry = new Registry();
    const ours = new HotHistogram({ name: 'x_seconds', help: 'Some help.', labelNames: ['route', 'cache'], buckets, registry });
    for (const [route, cache, value] of observations) {
      theirs.observe({ route, cache }, value);
      ours.labels(route, cache).observe(value);
    }
    expect(await registry.metrics()).toBe(await reference.metrics());
  });

  it('a counter scrapes exactly as prom-client writes it', async () => {
    const reference = new Registry();
    const theirs = new Counter({ name: 'x_total', help: 'Counted "things".', labelNames: ['route', 'cache'], registers: [reference] });
    const registry = new Registry();
    const ours = new HotCounter({ name: 'x_total', help: 'Counted "things".', labelNames: ['route', 'cache'], registry });
    for (const [route, cache, value] of observations) {
      theirs.inc({ route, cache }, value);
      ours.labels(route, cache).inc(value);
    }
    ours.labels('/v1/models', 'none').inc();
    theirs.inc({ route: '/v1/models', cache: 'none' });
    expect(await registry.metrics()).toBe(await reference.metrics());
  });

  it('refuses a wrong number of label values', () => {
    const counter = new HotCounter({ name: 'y_total', help: 'h', labelNames: ['a', 'b'], registry: new Registry() });
    expect(() => counter.labels('only-one')).toThrow(RangeError);
  });
});
