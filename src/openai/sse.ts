// Server-sent events as OpenAI streams them: whole-event framing for relays, and the error event a client sees
// when a stream fails after its headers were sent.
import type { OpenAIErrorBody } from './errors.js';

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

/** An event the openai SDKs turn into an APIError (`data: {"error":{…}}`). */
export function sseErrorEvent(body: OpenAIErrorBody): string {
  return `data: ${JSON.stringify(body)}\n\n`;
}
