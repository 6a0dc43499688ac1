import { describe, expect, it } from 'vitest';
import { createLogger, LineBatch, scrubSecrets } from '../../../src/log/logger.js';

describe('scrubSecrets', () => {
  it.each([
    ['{"msg":"key sk-proj-abcDEF123456 rejected"}', 'sk-proj-abcDEF123456'],
    ['{"h":"Bearer abc.def-ghi"}', 'abc.def-ghi'],
    ['{"api-key":"azure-secret-value"}', 'azure-secret-value'],
    ['{"path":"/v1/models?api_key=querysecret&x=1"}', 'querysecret'],
    ['{"authorization":"Basic dXNlcjpwYXNz"}', 'dXNlcjpwYXNz'],
  ])('removes the credential from %s', (line, secret) => {
    expect(scrubSecrets(line)).not.toContain(secret);
    expect(scrubSecrets(line)).toContain('[redacted]');
  });

  it('leaves ordinary lines alone', () => {
    const line = '{"route":"/v1/chat/completions","status":200,"task":"ask-questions"}';
    expect(scrubSecrets(line)).toBe(line);
  });
});

describe('createLogger', () => {
  it('redacts request headers and scrubs keys in messages', () => {
    const lines: string[] = [];
    const log = createLogger('info', { write: (line: string) => void lines.push(line) });
    log.info({ req: { headers: { authorization: 'Bearer sk-live-1234567890', 'api-key': 'k-123' } } }, 'failed for sk-live-1234567890');
    const out = lines.join('');
    expect(out).not.toContain('1234567890');
    expect(out).not.toContain('k-123');
    expect(JSON.parse(lines[0]!).msg).toBe('failed for [redacted]');
  });
});

describe('LineBatch', () => {
  it('writes the lines in order, joined, once a batch is full', () => {
    const writes: string[] = [];
    const batch = new LineBatch({ write: (text: string) => void writes.push(text) }, 10);
    batch.write('one\n');
    batch.write('two\n');
    expect(writes).toEqual([]);
    batch.write('three\n');
    expect(writes).toEqual(['one\ntwo\nthree\n']);
    batch.write('four\n');
    let flushed = false;
    batch.flush(() => (flushed = true));
    expect(flushed).toBe(true);
    expect(writes).toEqual(['one\ntwo\nthree\n', 'four\n']);
  });

  it('writes a batch that does not fill within a quarter second', async () => {
    const writes: string[] = [];
    const batch = new LineBatch({ write: (text: string) => void writes.push(text) });
    batch.write('alone\n');
    expect(writes).toEqual([]);
    await new Promise((resolve) => setTimeout(resolve, 400));
    expect(writes).toEqual(['alone\n']);
  });

  it('carries every line a logger writes, in the order written', () => {
    const writes: string[] = [];
    const batch = new LineBatch({ write: (text: string) => void writes.push(text) });
    const log = createLogger('info', batch);
    for (let i = 0; i < 1000; i++) log.info({ i }, 'numbered');
    log.warn('last');
    expect(writes.length).toBeGreaterThan(1);
    batch.flush();
    const lines = writes.join('').trim().split('\n').map((line) => JSON.parse(line) as { i?: number; msg: string });
    expect(lines).toHaveLength(1001);
    expect(lines.slice(0, 1000).map((line) => line.i)).toEqual([...Array(1000).keys()]);
    expect(lines.at(-1)?.msg).toBe('last');
  });
});
