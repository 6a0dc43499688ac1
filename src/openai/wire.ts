// Shapes of OpenAI's wire format that several modules check: a JSON object, narrowed from `unknown`.

export type JsonObject = Record<string, unknown>;

export function isRecord(value: unknown): value is JsonObject {
  return typeof value === 'object' && value !== null && !Array.isArray(value);
}
