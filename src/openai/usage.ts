// Reads the token usage out of a stored OpenAI answer without parsing all of it: on the hit path only the `usage`
// object at the end of the body is parsed, to count what the hit saved. Read once per buffer: the memory store hands
// out the same buffer on every hit of an entry, and one answer is read by both the metrics and the token budget.

export interface TokenUsage {
  promptTokens: number;
  completionTokens: number;
}

const USAGE_KEY = Buffer.from('"usage"');
const OPEN = 0x7b;
const CLOSE = 0x7d;
const QUOTE = 0x22;
const BACKSLASH = 0x5c;

const usages = new WeakMap<Buffer, Readonly<TokenUsage> | undefined>();

export function usageOf(body: Buffer): Readonly<TokenUsage> | undefined {
  let usage = usages.get(body);
  if (usage === undefined && !usages.has(body)) {
    usage = readUsage(body);
    usages.set(body, usage);
  }
  return usage;
}

function readUsage(body: Buffer): TokenUsage | undefined {
  const at = body.lastIndexOf(USAGE_KEY);
  if (at === -1) return undefined;
  const start = body.indexOf(OPEN, at + USAGE_KEY.length);
  if (start === -1) return undefined;
  const end = matchingBrace(body, start);
  if (end === -1) return undefined;
  try {
    const usage = JSON.parse(body.subarray(start, end + 1).toString('utf8')) as { prompt_tokens?: unknown; completion_tokens?: unknown };
    const promptTokens = typeof usage.prompt_tokens === 'number' ? usage.prompt_tokens : 0;
    const completionTokens = typeof usage.completion_tokens === 'number' ? usage.completion_tokens : 0;
    return { promptTokens, completionTokens };
  } catch {
    return undefined;
  }
}

function matchingBrace(body: Buffer, start: number): number {
  let depth = 0;
  let inString = false;
  for (let i = start; i < body.length; i++) {
    const byte = body[i];
    if (inString) {
      if (byte === BACKSLASH) i++;
      else if (byte === QUOTE) inString = false;
    } else if (byte === QUOTE) inString = true;
    else if (byte === OPEN) depth++;
    else if (byte === CLOSE && --depth === 0) return i;
  }
  return -1;
}
