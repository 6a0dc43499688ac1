// The deployment files, checked for structure (Docker cannot run here): the Dockerfile builds in stages and runs as
// a non-root user, docker-compose.yml wires Recall, Redis, Prometheus and Grafana to each other and to config/, and
// every PromQL expression of the Grafana dashboard names only metrics of the catalog.
import { existsSync, readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { Metrics } from '../../../src/metrics/catalog.js';
import { DEFAULT_PRICES, PriceTable } from '../../../src/metrics/prices.js';

const root = new URL('../../../', import.meta.url);
const read = (path: string) => readFileSync(new URL(path, root), 'utf8');

interface Service {
  build?: unknown;
  image?: string;
  environment?: Record<string, string>;
  ports?: string[];
  volumes?: string[];
  depends_on?: string[] | Record<string, unknown>;
  command?: string[];
}

const compose = parse(read('docker-compose.yml')) as { services: Record<string, Service> };

function dependsOn(service: Service): string[] {
  const deps = service.depends_on ?? [];
  return Array.isArray(deps) ? deps : Object.keys(deps);
}

/** host path → container path of a service's bind mounts (named volumes left out). */
function mounts(service: Service): Map<string, string> {
  return new Map((service.volumes ?? []).filter((v) => v.startsWith('./')).map((v) => {
    const [host, container] = v.split(':') as [string, string];
    return [host, container];
  }));
}

describe('Dockerfile', () => {
  const dockerfile = read('Dockerfile');
  const stages = dockerfile.split(/^FROM /m).slice(1);

  it('builds in one stage and runs in another, as a user that is not root', () => {
    expect(stages.length).toBeGreaterThanOrEqual(2);
    const runtime = stages.at(-1)!;
    expect(runtime).toMatch(/^COPY --from=build .*dist/m);
    expect(runtime).not.toMatch(/npm (ci|install)/);
    const user = /^USER (\S+)/m.exec(runtime)?.[1];
    expect(user).toBeDefined();
    expect(['root', '0', '0:0']).not.toContain(user);
    expect(runtime).toMatch(/^CMD \["node", "dist\/main\.js"\]/m);
    expect(runtime).toMatch(/^EXPOSE 8080$/m);
  });
});

describe('docker-compose.yml', () => {
  const { services } = compose;

  it('has Recall, Redis, Prometheus and Grafana', () => {
    expect(Object.keys(services).sort()).toEqual(['grafana', 'prometheus', 'recall', 'redis']);
    expect(services.recall!.build).toBeDefined();
  });

  it('points Recall at the Redis service and publishes its port', () => {
    const recall = services.recall!;
    expect(recall.environment?.RECALL_REDIS_URL).toBe('redis://redis:6379');
    expect(recall.environment?.RECALL_HOST).toBe('0.0.0.0');
    expect(recall.ports).toContain(`${recall.environment?.RECALL_PORT}:${recall.environment?.RECALL_PORT}`);
    expect(dependsOn(recall)).toContain('redis');
  });

  it('has Prometheus scrape Recall with config/prometheus.yml', () => {
    const prometheus = services.prometheus!;
    expect(mounts(prometheus).get('./config/prometheus.yml')).toBe('/etc/prometheus/prometheus.yml');
    const config = parse(read('config/prometheus.yml')) as { scrape_configs: { job_name: string; metrics_path?: string; static_configs: { targets: string[] }[] }[] };
    const job = config.scrape_configs.find((c) => c.job_name === 'recall')!;
    expect(job.metrics_path ?? '/metrics').toBe('/metrics');
    expect(job.static_configs[0]!.targets).toEqual([`recall:${services.recall!.environment?.RECALL_PORT}`]);
    expect(dependsOn(prometheus)).toContain('recall');
  });

  it('provisions Grafana with the Prometheus datasource and the Recall dashboard from config/grafana', () => {
    const grafana = services.grafana!;
    const volumes = mounts(grafana);
    expect(volumes.get('./config/grafana/provisioning')).toBe('/etc/grafana/provisioning');
    const dashboardsDir = volumes.get('./config/grafana/dashboards');
    expect(dashboardsDir).toBeDefined();
    for (const host of volumes.keys()) expect(existsSync(new URL(host, root)), host).toBe(true);

    const datasources = parse(read('config/grafana/provisioning/datasources/prometheus.yml')) as { datasources: { uid: string; type: string; url: string }[] };
    expect(datasources.datasources[0]).toMatchObject({ uid: 'prometheus', type: 'prometheus', url: 'http://prometheus:9090' });
    const providers = parse(read('config/grafana/provisioning/dashboards/recall.yml')) as { providers: { options: { path: string } }[] };
    expect(providers.providers[0]!.options.path).toBe(dashboardsDir);
    expect(grafana.environment?.GF_DASHBOARDS_DEFAULT_HOME_DASHBOARD_PATH).toBe(`${dashboardsDir}/recall.json`);
    expect(dependsOn(grafana)).toContain('prometheus');
  });
});

describe('Grafana dashboard', () => {
  interface Panel { type: string; title: string; datasource?: { uid: string }; targets?: { expr: string }[] }
  const dashboard = JSON.parse(read('config/grafana/dashboards/recall.json')) as { uid: string; panels: Panel[] };
  const expressions = dashboard.panels.flatMap((p) => (p.targets ?? []).map((t) => ({ panel: p.title, expr: t.expr })));

  const PROMQL_WORDS = new Set(['sum', 'min', 'max', 'avg', 'count', 'rate', 'irate', 'increase', 'histogram_quantile', 'by', 'without', 'on', 'ignoring', 'and', 'or', 'unless', 'clamp_min', 'clamp_max']);

  /** Series names an expression reads: what is left once strings, label matchers, ranges and grouping are gone. */
  function seriesNames(expr: string): string[] {
    const bare = expr.replace(/"[^"]*"/g, '').replace(/\{[^}]*\}/g, '').replace(/\[[^\]]*\]/g, '').replace(/\b(by|without)\s*\([^)]*\)/g, '');
    return (bare.match(/[a-zA-Z_:][a-zA-Z0-9_:]*/g) ?? []).filter((word) => !PROMQL_WORDS.has(word));
  }

  /** Every series the catalog exposes: metric names, with _bucket/_sum/_count for histograms. */
  async function catalogSeries(): Promise<Set<string>> {
    const metrics = new Metrics(new PriceTable(DEFAULT_PRICES), { kind: 'memory', entries: () => 0, bytes: () => 0, evictions: () => 0 });
    metrics.watchRedis(() => true);
    const names = new Set<string>();
    for (const metric of await metrics.registry.getMetricsAsJSON()) {
      names.add(metric.name);
      if (String(metric.type) === 'histogram') for (const suffix of ['_bucket', '_sum', '_count']) names.add(metric.name + suffix);
    }
    return names;
  }

  it('has panels with PromQL on the provisioned datasource', () => {
    expect(dashboard.uid).toBe('recall');
    expect(expressions.length).toBeGreaterThan(20);
    for (const panel of dashboard.panels.filter((p) => p.type !== 'row')) expect(panel.datasource?.uid, panel.title).toBe('prometheus');
  });

  it('names only metrics in the catalog', async () => {
    const catalog = await catalogSeries();
    const unknown = expressions.flatMap(({ panel, expr }) => seriesNames(expr).filter((name) => !catalog.has(name)).map((name) => `${panel}: ${name}`));
    expect(unknown).toEqual([]);
    // The extraction does find names: every expression reads at least one series.
    for (const { panel, expr } of expressions) expect(seriesNames(expr).length, `${panel}: ${expr}`).toBeGreaterThan(0);
  });
});
