import { describe, expect, it } from 'vitest';
import { SseEventFramer, sseErrorEvent, withoutUsageChunk } from '../../../src/openai/sse.js';

const text = (b: Buffer | undefined) => (b === undefined ? undefined : b.toString());

describe('SseEventFramer', () => {
  it('passes whole events through at once', () => {
    const framer = new SseEventFramer();
    expect(text(framer.push(Buffer.from('data: {"a":1}\n\ndata: {"b":2}\n\n')))).toBe('data: {"a":1}\n\ndata: {"b":2}\n\n');
    expect(framer.flush()).toBeUndefined();
  });

  it('holds back a half event until its blank line arrives, even split inside the separator', () => {
    const framer = new SseEventFramer();
    expect(text(framer.push(Buffer.from('data: {"a":1}\n\ndata: {"b"')))).toBe('data: {"a":1}\n\n');
    expect(framer.push(Buffer.from(':2}\n'))).toBeUndefined();
    expect(text(framer.push(Buffer.from('\ndata: [DONE]\n\n')))).toBe('data: {"b":2}\n\ndata: [DONE]\n\n');
  });

  it('understands CRLF line endings', () => {
    const framer = new SseEventFramer();
    expect(text(framer.push(Buffer.from('data: x\r\n\r\ndata: y')))).toBe('data: x\r\n\r\n');
    expect(text(framer.flush())).toBe('data: y');
  });

  it('drops a pending half event on discard', () => {
    const framer = new SseEventFramer();
    framer.push(Buffer.from('data: {"trunc'));
    framer.discard();
    expect(framer.flush()).toBeUndefined();
  });

  it('writes an error event the SDKs turn into an APIError', () => {
    const event = sseErrorEvent({ error: { message: 'm', type: 't', param: null, code: 'c' } });
    expect(event).toBe('data: {"error":{"message":"m","type":"t","param":null,"code":"c"}}\n\n');
  });
});

describe('withoutUsageChunk', () => {
  it('drops only the usage-only chunk, whatever the line endings', () => {
    const content = 'data: {"choices":[{"index":0,"delta":{"content":"hi"}}],"usage":null}\n\n';
    const usage = 'data: {"choices":[],"usage":{"prompt_tokens":1,"completion_tokens":1,"total_tokens":2}}\n\n';
    const done = 'data: [DONE]\n\n';
    expect(withoutUsageChunk(Buffer.from(content + usage + done)).toString()).toBe(content + done);
    expect(withoutUsageChunk(Buffer.from(usage.replaceAll('\n', '\r\n'))).toString()).toBe('');
    const untouched = Buffer.from(content + done);
    expect(withoutUsageChunk(untouched)).toBe(untouched);
  });
});
