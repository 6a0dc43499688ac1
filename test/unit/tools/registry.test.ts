// tools.registry: validated at load with messages naming the path; header references resolved from the environment.
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';

const weather = { name: 'get_weather', url: 'http://127.0.0.1:9/weather', access: 'read', cache_ttl_s: 60 };

function load(registry: unknown, env: Record<string, string> = {}) {
  return loadConfig({ env, overrides: { 'tools.registry': registry } });
}

describe('tools.registry', () => {
  it('is empty when unset', () => {
    expect(loadConfig({ env: {} }).tools.registry).toEqual([]);
  });

  it('parses tools with defaults and resolves ${VAR} header references', () => {
    const [tool] = load([{ ...weather, headers: { Authorization: 'Bearer ${WEATHER_KEY}' } }], { WEATHER_KEY: 'sekret' }).tools.registry;
    expect(tool).toEqual({ name: 'get_weather', url: 'http://127.0.0.1:9/weather', method: 'POST', headers: { authorization: 'Bearer sekret' },
      timeoutMs: 10_000, access: 'read', cacheTtlS: 60, affects: [] });
  });

  it.each([
    [[{ ...weather, headers: { authorization: 'Bearer ${MISSING}' } }], 'tools.registry[0].headers.authorization: environment variable MISSING is not set'],
    [[{ ...weather, access: 'delete' }], 'tools.registry[0].access must be read or write'],
    [[weather, { ...weather, url: 'ftp://x' }], 'tools.registry[1].url must be an http:// or https:// URL'],
    [[weather, weather], 'tools.registry[1].name: get_weather is configured twice'],
    [[{ ...weather, timeout_ms: 0 }], 'tools.registry[0].timeout_ms must be an integer from 1 to 600000'],
    [[{ name: 'w', url: 'http://x/', access: 'write', affects: ['nope'] }], 'tools.registry[0].affects[0]: no tool is named "nope"'],
    [[{ ...weather, access: 'write' }], 'tools.registry[0].cache_ttl_s: only read tools are cached'],
    [[{ ...weather, colour: 'red' }], 'tools.registry[0]: unknown key colour'],
    [{ get_weather: weather }, 'tools.registry must be a list'],
  ])('rejects %j naming the path', (registry, message) => {
    expect(() => load(registry)).toThrow(ConfigError);
    expect(() => load(registry)).toThrow(message);
  });

  it('is read from the YAML file named by RECALL_CONFIG, with references from the environment', () => {
    const dir = mkdtempSync(join(tmpdir(), 'recall-tools-'));
    try {
      const file = join(dir, 'recall.yaml');
      writeFileSync(file, [
        'tools:',
        '  max_concurrency: 4',
        '  registry:',
        '    - name: get_weather',
        '      url: http://127.0.0.1:9/weather',
        '      method: get',
        '      access: read',
        '      headers: { X-Api-Key: "${WEATHER_KEY}" }',
      ].join('\n'));
      const config = loadConfig({ env: { RECALL_CONFIG: file, WEATHER_KEY: 'k1' } });
      expect(config.tools.maxConcurrency).toBe(4);
      expect(config.tools.registry[0]).toMatchObject({ name: 'get_weather', method: 'GET', headers: { 'x-api-key': 'k1' } });
      expect(() => loadConfig({ env: { RECALL_CONFIG: file } })).toThrow(`invalid setting tools.registry[0].headers.X-Api-Key: environment variable WEATHER_KEY is not set (in ${file})`);
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  });
});
