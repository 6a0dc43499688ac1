// List prices per million tokens, to turn tokens a cache hit did not spend into money saved. Overridable with
// `metrics.prices`; a model not in the table saves tokens but no money, and is labelled `other`.

export interface ModelPrice {
  /** USD per million prompt (input) tokens. */
  input: number;
  /** USD per million completion (output) tokens. */
  output: number;
}

/** OpenAI list prices (USD per 1M tokens, standard tier) when this table was written. */
export const DEFAULT_PRICES: Readonly<Record<string, ModelPrice>> = {
  'gpt-5': { input: 1.25, output: 10 },
  'gpt-5-mini': { input: 0.25, output: 2 },
  'gpt-5-nano': { input: 0.05, output: 0.4 },
  'gpt-4.1': { input: 2, output: 8 },
  'gpt-4.1-mini': { input: 0.4, output: 1.6 },
  'gpt-4.1-nano': { input: 0.1, output: 0.4 },
  'gpt-4o': { input: 2.5, output: 10 },
  'gpt-4o-mini': { input: 0.15, output: 0.6 },
  'o3': { input: 2, output: 8 },
  'o4-mini': { input: 1.1, output: 4.4 },
  'gpt-3.5-turbo': { input: 0.5, output: 1.5 },
  'gpt-3.5-turbo-instruct': { input: 1.5, output: 2 },
  'text-embedding-3-small': { input: 0.02, output: 0 },
  'text-embedding-3-large': { input: 0.13, output: 0 },
  'text-embedding-ada-002': { input: 0.1, output: 0 },
};

/** Parses `model=input/output,model=input/output` (USD per million tokens); throws a message naming the bad part. */
export function parsePriceOverrides(text: string): Record<string, ModelPrice> {
  const prices: Record<string, ModelPrice> = {};
  for (const part of text.split(',').map((p) => p.trim()).filter((p) => p !== '')) {
    const match = /^([A-Za-z0-9._:/-]+)=(\d+(?:\.\d+)?)\/(\d+(?:\.\d+)?)$/.exec(part);
    if (match === null) throw new Error(`"${part}" is not model=input/output in USD per million tokens, e.g. gpt-4o=2.5/10`);
    prices[match[1]!] = { input: Number(match[2]), output: Number(match[3]) };
  }
  return prices;
}

/** Maps model names to the table's keys (longest prefix, so dated snapshots count as their model) or `other`. */
export class PriceTable {
  private readonly names: string[];
  private readonly resolved = new Map<string, string>();

  constructor(private readonly prices: Readonly<Record<string, ModelPrice>>) {
    this.names = Object.keys(prices).sort((a, b) => b.length - a.length);
  }

  /** A bounded label value for a model: a table key, or `other`. */
  modelLabel(model: string): string {
    let label = this.resolved.get(model);
    if (label !== undefined) return label;
    label = this.names.find((name) => model === name || model.startsWith(`${name}-`)) ?? 'other';
    if (this.resolved.size < 10_000) this.resolved.set(model, label);
    return label;
  }

  /** USD for these token counts under a table key; 0 for `other`. */
  cost(label: string, promptTokens: number, completionTokens: number): number {
    const price = this.prices[label];
    if (price === undefined) return 0;
    return (promptTokens * price.input + completionTokens * price.output) / 1_000_000;
  }
}
