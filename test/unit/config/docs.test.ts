// The example YAML and the README's table document exactly the settings the schema has, with their defaults.
import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parse } from 'yaml';
import { loadConfig } from '../../../src/config/load.js';
import { SETTINGS } from '../../../src/config/schema.js';

const root = new URL('../../../', import.meta.url);
const exampleText = readFileSync(new URL('config/recall.example.yaml', root), 'utf8');
const readme = readFileSync(new URL('README.md', root), 'utf8');

function flat(node: Record<string, unknown>, prefix = ''): Record<string, unknown> {
  return Object.fromEntries(Object.entries(node).filter(([, v]) => v !== null).flatMap(([k, v]) =>
    typeof v === 'object' && v !== null ? Object.entries(flat(v as Record<string, unknown>, `${prefix}${k}.`)) : [[`${prefix}${k}`, v]]));
}

describe('configuration docs', () => {
  it('config/recall.example.yaml sets every setting with a default to that default, and nothing else', () => {
    const example = flat(parse(exampleText) as Record<string, unknown>);
    const withDefaults = SETTINGS.filter((s) => s.default !== undefined);
    expect(Object.keys(example).sort()).toEqual(withDefaults.map((s) => s.yaml).sort());
    for (const setting of withDefaults) expect(example[setting.yaml], setting.yaml).toEqual(setting.default);
    for (const setting of SETTINGS.filter((s) => s.default === undefined)) {
      expect(exampleText, setting.yaml).toContain(`# ${setting.yaml.split('.').at(-1)}:`);
    }
  });

  it('the example file loads as a valid config', () => {
    const config = loadConfig({ env: { RECALL_CONFIG: new URL('config/recall.example.yaml', root).pathname } });
    expect(config).toEqual(loadConfig({ env: {} }));
  });

  it("the README's table names every key, its variable and its default", () => {
    for (const setting of SETTINGS) {
      const row = readme.split('\n').find((line) => line.startsWith(`| \`${setting.yaml}\` |`));
      expect(row, setting.yaml).toBeDefined();
      if (setting.env) expect(row).toContain(`\`${setting.env}\``);
      expect(row).toContain(setting.default === undefined ? 'unset' : `\`${setting.default}\``);
    }
  });
});
