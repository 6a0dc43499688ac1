// The context windows of known models, for auto-compaction without an explicit target; others get the configured default.

/** Longest prefix first: the first match wins. */
const CONTEXT_WINDOWS: readonly (readonly [prefix: string, tokens: number])[] = [
  ['gpt-4.1', 1_047_576],
  ['gpt-5', 400_000],
  ['gpt-4o', 128_000],
  ['chatgpt-4o', 128_000],
  ['gpt-4-turbo', 128_000],
  ['gpt-4-32k', 32_768],
  ['gpt-4', 8_192],
  ['gpt-3.5-turbo', 16_385],
  ['o1-mini', 128_000],
  ['o1', 200_000],
  ['o3', 200_000],
  ['o4', 200_000],
];

export function contextWindowOf(model: string, fallback: number): number {
  const name = model.toLowerCase();
  for (const [prefix, tokens] of CONTEXT_WINDOWS) if (name.startsWith(prefix)) return tokens;
  return fallback;
}
