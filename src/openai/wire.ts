// Shapes of OpenAI's wire format that several modules check: a JSON object, narrowed from `unknown`.

export type JsonObject = Record<string, unknown>;

export function isRecord(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}

const CHOICES = Buffer.from('"choices"');
const OPEN_BRACE = 0x7b;

/**
 * A 2xx body can still be something other than a completion (a proxy's HTML page, an error object). A byte check,
 * not a parse: parsing every answer cost the miss path more than anything else Recall adds to it; a stored body
 * that still turns out unreadable is dropped when a hit cannot render it.
 */
export function isCompletionObject(body: Buffer): boolean {
  let first = 0;
  while (first < body.length && body[first]! <= 0x20) first++;
  return body[first] === OPEN_BRACE && body.includes(CHOICES) && !body.subarray(0, 64).includes('"error"');
}

/** Whether the bytes parse as JSON; for the rare answers that `isCompletionObject` does not recognise. */
export function isJson(body: Buffer): boolean {
  try {
    JSON.parse(body.toString('utf8'));
    return true;
  } catch {
    return false;
  }
}
