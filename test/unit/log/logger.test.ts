import { describe, expect, it } from 'vitest';
import { createLogger, scrubSecrets } from '../../../src/log/logger.js';

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
