// Server-sent events as OpenAI streams them: whole-event framing for relays, and the error event a client sees
// when a stream fails after its headers were sent.
import type { OpenAIErrorBody } from './errors.js';
import { isRecord } from './wire.js';

const LF_LF = Buffer.from('\n\n');
const LF_CRLF = Buffer.from('\n\r\n');

/**
 * Cuts a byte stream at event boundaries (a blank line), so a relay forwards whole events only and can still
 * append a clean error event if the upstream breaks mid-event.
 */
export class SseEventFramer {
  private tail: Buffer | undefined;

  /** The complete events that `chunk` finishes, or undefined when it only adds to a pending event. */
  push(chunk: Buffer): Buffer | undefined {
    const data = this.tail === undefined ? chunk : Buffer.concat([this.tail, chunk]);
    const end = Math.max(lastBoundary(data, LF_LF), lastBoundary(data, LF_CRLF));
    if (end === -1) {
      this.tail = data;
      return undefined;
    }
    this.tail = end === data.length ? undefined : data.subarray(end);
    return end === data.length ? data : data.subarray(0, end);
  }

  /** Whatever is pending at the end of a stream that finished normally. */
  flush(): Buffer | undefined {
    const rest = this.tail;
    this.tail = undefined;
    return rest;
  }

  /** Drops a half-received event: after a failure it must not reach the client. */
  discard(): void {
    this.tail = undefined;
  }
}

function lastBoundary(data: Buffer, separator: Buffer): number {
  const at = data.lastIndexOf(separator);
  return at === -1 ? -1 : at + separator.length;
}

const EMPTY_CHOICES = Buffer.from('"choices":[]');

/**
 * Drops the usage-only chunk (`"choices":[]` plus `usage`) from whole events. Recall asks the upstream for usage so
 * that every stored entry has it; a client that did not ask must not get a chunk without choices.
 */
export function withoutUsageChunk(events: Buffer): Buffer {
  if (events.indexOf(EMPTY_CHOICES) === -1) return events;
  const kept = events.toString('utf8').split(/(?<=\n\r?\n)/).filter((event) => !isUsageOnlyEvent(event));
  return Buffer.from(kept.join(''), 'utf8');
}

function isUsageOnlyEvent(event: string): boolean {
  const data = /^data: ?(.*)$/m.exec(event)?.[1];
  if (data === undefined) return false;
  try {
    const chunk: unknown = JSON.parse(data);
    return isRecord(chunk) && Array.isArray(chunk.choices) && chunk.choices.length === 0 && isRecord(chunk.usage);
  } catch {
    return false;
  }
}

/** An event the openai SDKs turn into an APIError (`data: {"error":{…}}`). */
export function sseErrorEvent(body: OpenAIErrorBody): string {
  return `data: ${JSON.stringify(body)}\n\n`;
}
