// Recall's /metrics as Prometheus itself reads it: `promtool check metrics` finds no problem in the exposition after
// varied traffic, and a real Prometheus scraping Recall with config/prometheus.yml computes the hit rate.
import { spawnSync } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { parse, stringify } from 'yaml';
import { toolAvailable } from '../../support/binaries.js';
import { promtoolCheckMetrics, startPrometheus, type RunningPrometheus } from '../../support/prometheus.js';
import { scrape } from '../../support/metrics.js';
import { eventually, startRecallWithMock, type RecallWithMock } from '../../support/recall.js';

const HAS_PROMTOOL = toolAvailable('promtool', 'prometheus');
const HAS_PROMETHEUS = toolAvailable('prometheus', 'prometheus');

/** Served from a cache over every cacheable request, since start: the expression the README and Grafana use. */
const HIT_RATE_PROMQL =
  'sum(recall_requests_total{cache=~"HIT|SEMANTIC|STALE"}) / sum(recall_requests_total{cache=~"HIT|SEMANTIC|STALE|MISS|COALESCED"})';

/** `misses` distinct prompts, each repeated `repeats` times: misses × repeats hits. */
async function traffic(setup: RecallWithMock, misses: number, repeats: number, tag: string): Promise<void> {
  for (let i = 0; i < misses; i++) {
    const request = { model: 'gpt-4o-mini', messages: [{ role: 'user' as const, content: `${tag} ${i}` }] };
    await setup.sdk.chat.completions.create(request);
    for (let r = 0; r < repeats; r++) await setup.sdk.chat.completions.create(request);
  }
}

describe.skipIf(!HAS_PROMTOOL)('promtool check metrics', () => {
  let setup: RecallWithMock;

  beforeAll(async () => {
    setup = await startRecallWithMock({ 'upstream.retries': 0 });
  });
  afterAll(async () => {
    await setup?.close();
  });

  it('finds nothing to complain about in /metrics after hits, misses, streams, embeddings, errors and a forward', { timeout: 30_000 }, async () => {
    await traffic(setup, 2, 1, 'promtool');
    const stream = await setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'promtool stream' }], stream: true });
    for await (const _chunk of stream);
    await setup.sdk.embeddings.create({ model: 'text-embedding-3-small', input: ['a', 'b'] });
    setup.mock.failNext('503');
    await expect(setup.sdk.chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'promtool error' }] })).rejects.toMatchObject({ status: 503 });
    await fetch(`${setup.recall.baseURL}/models`);

    const exposition = await scrape(setup.recall.url);
    expect(exposition).toContain('recall_stream_first_token_seconds_bucket');
    const { status, output } = promtoolCheckMetrics(exposition);
    expect(output).toBe('');
    expect(status).toBe(0);
  });

  it('accepts config/prometheus.yml', () => {
    const result = spawnSync('promtool', ['check', 'config', new URL('../../../config/prometheus.yml', import.meta.url).pathname], { encoding: 'utf8' });
    expect(`${result.stdout}${result.stderr}`).toContain('SUCCESS');
    expect(result.status).toBe(0);
  });
});

describe.skipIf(!HAS_PROMETHEUS)('a real Prometheus scraping Recall', () => {
  let setup: RecallWithMock;
  let prometheus: RunningPrometheus;

  beforeAll(async () => {
    setup = await startRecallWithMock();
    // config/prometheus.yml as shipped, with its target pointed at this test's Recall and a short interval.
    const config = parse(readFileSync(new URL('../../../config/prometheus.yml', import.meta.url), 'utf8')) as {
      global: Record<string, unknown>; scrape_configs: { job_name: string; static_configs: { targets: string[] }[]; scrape_interval?: string }[];
    };
    config.global.scrape_interval = '1s';
    const job = config.scrape_configs.find((c) => c.job_name === 'recall')!;
    job.static_configs = [{ targets: [new URL(setup.recall.url).host] }];
    prometheus = await startPrometheus(stringify(config));
  }, 30_000);
  afterAll(async () => {
    await prometheus?.stop();
    await setup?.close();
  });

  it('computes the hit rate of the traffic it scraped', { timeout: 60_000 }, async () => {
    const before = await scrape(setup.recall.url);
    expect(before).not.toContain('cache="HIT"');
    // 4 distinct prompts asked 4 times each: 4 misses, 12 hits, a hit rate of 0.75.
    await traffic(setup, 4, 3, 'prometheus');
    let rate: number | undefined;
    for (let i = 0; i < 150 && rate !== 0.75; i++) {
      rate = await prometheus.query(HIT_RATE_PROMQL);
      if (rate !== 0.75) await new Promise((resolve) => setTimeout(resolve, 200));
    }
    expect(rate).toBe(0.75);
    expect(await prometheus.query('up{job="recall"}')).toBe(1);
    await eventually(async () => (await prometheus.query('sum(recall_requests_total{cache="MISS"})')) === 4, 'Prometheus saw the misses');
  });

  it('evaluates every PromQL expression of the Grafana dashboard', { timeout: 30_000 }, async () => {
    const dashboard = JSON.parse(readFileSync(new URL('../../../config/grafana/dashboards/recall.json', import.meta.url), 'utf8')) as { panels: { targets?: { expr: string }[] }[] };
    const expressions = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => t.expr));
    expect(expressions.length).toBeGreaterThan(20);
    // Grafana's variables, as Grafana would fill them in; a parse or type error makes query() throw.
    for (const expr of expressions) await prometheus.query(expr.replaceAll('$__rate_interval', '1m').replaceAll('$__range', '5m'));
  });
});
