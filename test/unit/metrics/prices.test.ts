import { describe, expect, it } from 'vitest';
import { DEFAULT_PRICES, PriceTable, parsePriceOverrides } from '../../../src/metrics/prices.js';

describe('PriceTable', () => {
  const table = new PriceTable(DEFAULT_PRICES);

  it('maps dated snapshots to their model and unknown models to other', () => {
    expect(table.modelLabel('gpt-4o-mini-2024-07-18')).toBe('gpt-4o-mini');
    expect(table.modelLabel('gpt-4o-2024-08-06')).toBe('gpt-4o');
    expect(table.modelLabel('gpt-4o')).toBe('gpt-4o');
    expect(table.modelLabel('gpt-4ox')).toBe('other');
    expect(table.modelLabel('my-finetune')).toBe('other');
  });

  it('prices prompt and completion tokens per million', () => {
    expect(table.cost('gpt-4o', 1_000_000, 0)).toBeCloseTo(2.5);
    expect(table.cost('gpt-4o', 1000, 500)).toBeCloseTo(0.0025 + 0.005);
    expect(table.cost('other', 1000, 1000)).toBe(0);
  });
});

describe('parsePriceOverrides', () => {
  it('reads model=input/output pairs', () => {
    expect(parsePriceOverrides('my-model=1/2, gpt-4o=2.5/10')).toEqual({ 'my-model': { input: 1, output: 2 }, 'gpt-4o': { input: 2.5, output: 10 } });
  });
  it('names the part it cannot read', () => {
    expect(() => parsePriceOverrides('gpt-4o=cheap')).toThrow(/"gpt-4o=cheap" is not model=input\/output/);
  });
});
