import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../../../src/config/load.js';

function yamlFile(text: string): string {
  const dir = mkdtempSync(join(tmpdir(), 'recall-config-'));
  const path = join(dir, 'recall.yaml');
  writeFileSync(path, text);
  return path;
}

describe('loadConfig', () => {
  it('gives the documented defaults with no file and no environment', () => {
    const config = loadConfig({ env: {} });
    expect(config.server).toEqual({
      host: '127.0.0.1', port: 8080, bodyLimitBytes: 10 * 1024 * 1024, maxHeaderBytes: 32 * 1024, maxMessages: 100_000, maxStringChars: 10 * 1024 * 1024, maxJsonDepth: 128, shutdownGraceMs: 10_000,
    });
    expect(config.upstream.url).toBe('https://api.openai.com/v1');
    expect(config.upstream.apiKey).toBeUndefined();
    expect(config.log.level).toBe('info');
  });

  it('reads the YAML file named by RECALL_CONFIG, and the environment wins over it', () => {
    const file = yamlFile('server:\n  port: 9001\n  host: 0.0.0.0\nupstream:\n  url: http://127.0.0.1:9/v1/\n  connections: 7\n');
    const config = loadConfig({ env: { RECALL_CONFIG: file, RECALL_PORT: '9002' } });
    expect(config.server.port).toBe(9002);
    expect(config.server.host).toBe('0.0.0.0');
    expect(config.upstream.url).toBe('http://127.0.0.1:9/v1');
    expect(config.upstream.connections).toBe(7);
  });

  it('reads RECALL_SEMANTIC (on/off), RECALL_SEMANTIC_THRESHOLD and RECALL_EMBEDDER', () => {
    expect(loadConfig({ env: {} }).semantic).toMatchObject({ enabled: true, embedder: 'local', threshold: 0.86 });
    const config = loadConfig({ env: { RECALL_SEMANTIC: 'off', RECALL_SEMANTIC_THRESHOLD: '0.93', RECALL_EMBEDDER: 'upstream' } });
    expect(config.semantic).toMatchObject({ enabled: false, threshold: 0.93, embedder: 'upstream' });
    expect(loadConfig({ env: { RECALL_SEMANTIC: 'on' } }).semantic.enabled).toBe(true);
    expect(() => loadConfig({ env: { RECALL_SEMANTIC_THRESHOLD: '1.5' } })).toThrow(/semantic\.threshold \(RECALL_SEMANTIC_THRESHOLD\) = "1\.5".*a number from 0\.5 to 1/);
    expect(() => loadConfig({ env: { RECALL_SEMANTIC_THRESHOLD: 'high' } })).toThrow(/RECALL_SEMANTIC_THRESHOLD/);
    expect(() => loadConfig({ env: { RECALL_EMBEDDER: 'openai' } })).toThrow(/one of local, upstream/);
  });

  it('treats an empty environment variable as unset', () => {
    expect(loadConfig({ env: { RECALL_UPSTREAM_API_KEY: '', RECALL_PORT: ' ' } }).server.port).toBe(8080);
  });

  it.each([
    [{ RECALL_PORT: 'eighty' }, /server\.port \(RECALL_PORT\) = "eighty" from \$RECALL_PORT: must be an integer from 0 to 65535/],
    [{ RECALL_PORT: '70000' }, /server\.port .*must be an integer from 0 to 65535/],
    [{ RECALL_UPSTREAM_URL: 'ftp://example.com/v1' }, /upstream\.url .*must be a URL \(http:\/\/ or https:\/\/\)/],
    [{ RECALL_UPSTREAM_URL: 'not a url' }, /upstream\.url .*"not a url"/],
    [{ RECALL_REDIS_URL: 'http://127.0.0.1:6379' }, /redis\.url \(RECALL_REDIS_URL\) = \(hidden\) .*must be a URL \(redis:\/\/ or rediss:\/\/\)/],
    [{ RECALL_REDIS_CLUSTER: '127.0.0.1:7000,redis-b' }, /redis\.cluster \(RECALL_REDIS_CLUSTER\) = "127\.0\.0\.1:7000,redis-b" .*"redis-b" is not host:port/],
    [{ RECALL_REDIS_CLUSTER: '127.0.0.1:99999' }, /redis\.cluster .*"127\.0\.0\.1:99999" is not host:port with a port from 1 to 65535/],
    [{ RECALL_REDIS_CLUSTER: ' , ' }, /redis\.cluster .*must be host:port addresses/],
    [{ RECALL_REDIS_URL: 'redis://127.0.0.1:6379', RECALL_REDIS_CLUSTER: '127.0.0.1:7000' }, /redis\.url \(RECALL_REDIS_URL\) and redis\.cluster \(RECALL_REDIS_CLUSTER\) are both set: .*set only one/],
    [{ RECALL_REDIS_CLUSTER: '127.0.0.1:7000', RECALL_REDIS_SENTINELS: '127.0.0.1:26379', RECALL_REDIS_SENTINEL_NAME: 'main' }, /redis\.cluster .* and redis\.sentinels .* are both set/],
    [{ RECALL_REDIS_SENTINELS: '127.0.0.1:26379' }, /redis\.sentinels \(RECALL_REDIS_SENTINELS\) needs redis\.sentinel_name/],
    [{ RECALL_REDIS_SENTINEL_NAME: 'main' }, /redis\.sentinel_name .* is set but redis\.sentinels .* is not/],
    [{ RECALL_REDIS_URL: 'redis://127.0.0.1:6379', RECALL_REDIS_PASSWORD: 'secret' }, /redis\.password .* applies to redis\.cluster or redis\.sentinels only/],
    [{ RECALL_LOG_LEVEL: 'loud' }, /log\.level .*must be one of fatal, error, warn, info, debug, trace, silent/],
  ])('rejects %j with one line naming key, value and what is allowed', (env, message) => {
    let error: unknown;
    try {
      loadConfig({ env });
    } catch (err) {
      error = err;
    }
    expect(error).toBeInstanceOf(ConfigError);
    expect((error as Error).message).toMatch(message);
    expect((error as Error).message).not.toContain('\n');
  });

  it('checks list and table settings part by part', () => {
    const routes = yamlFile('cache:\n  routes: chat.completions,moderations\n');
    expect(() => loadConfig({ env: { RECALL_CONFIG: routes } })).toThrow(/cache\.routes .*not moderations/);
    const prices = yamlFile('metrics:\n  prices: gpt-4o=cheap\n');
    expect(() => loadConfig({ env: { RECALL_CONFIG: prices } })).toThrow(/metrics\.prices .*"gpt-4o=cheap" is not model=input\/output/);
  });

  it('reads Redis Cluster seeds and sentinels as host:port lists, from the environment or a YAML list', () => {
    expect(loadConfig({ env: { RECALL_REDIS_CLUSTER: '10.0.0.1:7000, redis-b:7001,[::1]:7002' } }).redis.cluster).toEqual([
      { host: '10.0.0.1', port: 7000 }, { host: 'redis-b', port: 7001 }, { host: '::1', port: 7002 },
    ]);
    const file = yamlFile('redis:\n  sentinels:\n    - s1:26379\n    - s2:26379\n  sentinel_name: main\n  password: pw\n');
    const redis = loadConfig({ env: { RECALL_CONFIG: file } }).redis;
    expect(redis.sentinels).toEqual([{ host: 's1', port: 26379 }, { host: 's2', port: 26379 }]);
    expect(redis.sentinelName).toBe('main');
    expect(redis.password).toBe('pw');
    expect(() => loadConfig({ env: { RECALL_CONFIG: yamlFile('redis:\n  cluster: [7000]\n') } })).toThrow(/redis\.cluster .*must be host:port addresses/);
  });

  it('rejects unknown keys in the file, naming them', () => {
    const file = yamlFile('server:\n  prot: 9001\n');
    expect(() => loadConfig({ env: { RECALL_CONFIG: file } })).toThrow(/unknown key server\.prot/);
  });

  it('rejects a file that is missing or not YAML', () => {
    expect(() => loadConfig({ env: { RECALL_CONFIG: '/nonexistent/recall.yaml' } })).toThrow(/cannot be read/);
    expect(() => loadConfig({ env: { RECALL_CONFIG: yamlFile('server: [unclosed\n') } })).toThrow(/not valid YAML/);
  });

  it('never prints a secret back in an error', () => {
    const file = yamlFile('upstream:\n  api_key: [sk-should-not-appear]\n');
    expect(() => loadConfig({ env: { RECALL_CONFIG: file } })).toThrow(/upstream\.api_key .*\(hidden\)/);
    try {
      loadConfig({ env: { RECALL_CONFIG: file } });
    } catch (err) {
      expect((err as Error).message).not.toContain('sk-should-not-appear');
    }
  });
});
