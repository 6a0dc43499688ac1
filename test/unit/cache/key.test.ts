import { describe, expect, it } from 'vitest';
import { FIELD_RULES, cacheKey, canonicalBody } from '../../../src/cache/key.js';
import type { CachedRoute } from '../../../src/proxy/pipeline.js';

const base = { route: 'chat.completions' as const, tenant: 't1', namespace: 'default' };
const chat = { model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'hi' }], temperature: 0 };

// A value for each field that differs from what `sample` holds, to prove a change moves (or does not move) the key.
const CHANGED: Record<string, unknown> = {
  model: 'gpt-4o', messages: [{ role: 'user', content: 'bye' }], prompt: 'other', input: 'other', temperature: 0.5,
};

const SAMPLES: Record<CachedRoute, Record<string, unknown>> = {
  'chat.completions': chat,
  completions: { model: 'gpt-3.5-turbo-instruct', prompt: 'Say hi' },
  embeddings: { model: 'text-embedding-3-small', input: 'hello' },
};

describe('cacheKey', () => {
  it('is a hex SHA-256, stable for byte-different but equal bodies (key order, whitespace, number spelling)', () => {
    const a = cacheKey({ ...base, body: JSON.parse('{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}],"temperature":0}') });
    const b = cacheKey({ ...base, body: JSON.parse('{ "temperature" : 0.0 ,\n "messages":[{"content":"hi","role":"user"}], "model":"gpt-4o-mini"}') });
    expect(a).toMatch(/^default:[0-9a-f]{64}$/);
    expect(b).toBe(a);
    expect(cacheKey({ ...base, body: { ...chat, top_p: 1e0 } })).toBe(cacheKey({ ...base, body: { ...chat, top_p: 1 } }));
  });

  it('differs by route, tenant and namespace', () => {
    const key = cacheKey({ ...base, body: chat });
    expect(cacheKey({ ...base, tenant: 't2', body: chat })).not.toBe(key);
    expect(cacheKey({ ...base, namespace: 'other', body: chat })).not.toBe(key);
    expect(cacheKey({ ...base, route: 'completions', body: chat })).not.toBe(key);
  });

  it('cannot be forged by moving text between parts (separators are unambiguous)', () => {
    expect(cacheKey({ ...base, tenant: 'a', namespace: 'bc', body: chat })).not.toBe(cacheKey({ ...base, tenant: 'ab', namespace: 'c', body: chat }));
  });

  for (const [route, rules] of Object.entries(FIELD_RULES) as [CachedRoute, (typeof FIELD_RULES)[CachedRoute]][]) {
    describe(`${route} field table`, () => {
      const sample = SAMPLES[route];
      const keyOf = (body: Record<string, unknown>) => cacheKey({ ...base, route, body });
      for (const [field, rule] of Object.entries(rules)) {
        it(`${field} is ${rule.inKey ? 'in the key' : 'ignored'}: ${rule.reason}`, () => {
          expect(rule.reason.length).toBeGreaterThan(5);
          const value = CHANGED[field] ?? { probe: field };
          const changed = keyOf({ ...sample, [field]: value });
          if (rule.inKey) expect(changed).not.toBe(keyOf(sample));
          else expect(changed).toBe(keyOf(sample));
        });
      }
      it('keeps unknown fields in the key', () => {
        expect(keyOf({ ...sample, some_future_parameter: 1 })).not.toBe(keyOf(sample));
      });
    });
  }

  it('lists the fields that matter most for correctness as in the key', () => {
    for (const field of ['tools', 'response_format', 'seed', 'logprobs', 'n', 'tool_choice', 'messages', 'model']) {
      expect(FIELD_RULES['chat.completions'][field]?.inKey, field).toBe(true);
    }
    for (const field of ['user', 'metadata', 'store', 'stream', 'stream_options']) {
      expect(FIELD_RULES['chat.completions'][field]?.inKey, field).toBe(false);
    }
  });

  it('canonical body drops ignored fields and sorts keys at every depth', () => {
    expect(canonicalBody('chat.completions', { stream: true, user: 'u', model: 'm', messages: [{ role: 'user', content: 'x' }] }))
      .toBe('{"messages":[{"content":"x","role":"user"}],"model":"m"}');
  });
});

describe('KeyMemo', () => {
  it('gives exactly the key cacheKey gives, and never mixes tenants, namespaces or routes', async () => {
    const { KeyMemo } = await import('../../../src/cache/key.js');
    const memo = new KeyMemo();
    const raw = Buffer.from(JSON.stringify(chat));
    for (let i = 0; i < 2; i++) {
      expect(memo.keyFor({ ...base, body: chat }, raw)).toBe(cacheKey({ ...base, body: chat }));
      expect(memo.keyFor({ ...base, tenant: 'other', body: chat }, raw)).toBe(cacheKey({ ...base, tenant: 'other', body: chat }));
      expect(memo.keyFor({ ...base, namespace: 'ns', body: chat }, raw)).toBe(cacheKey({ ...base, namespace: 'ns', body: chat }));
      expect(memo.keyFor({ ...base, route: 'completions', body: chat }, raw)).toBe(cacheKey({ ...base, route: 'completions', body: chat }));
    }
  });

  it('remembers the keys of a frozen (repeated) body by identity, per partition, with the same keys', async () => {
    const { KeyMemo } = await import('../../../src/cache/key.js');
    const memo = new KeyMemo();
    const frozen = Object.freeze({ ...chat });
    for (let i = 0; i < 2; i++) {
      expect(memo.keyFor({ ...base, body: frozen }, undefined)).toBe(cacheKey({ ...base, body: chat }));
      expect(memo.keyFor({ ...base, tenant: 'other', body: frozen }, undefined)).toBe(cacheKey({ ...base, tenant: 'other', body: chat }));
      expect(memo.keyFor({ ...base, namespace: 'ns', body: frozen }, undefined)).toBe(cacheKey({ ...base, namespace: 'ns', body: chat }));
    }
    // Many partitions of one body: every key stays right past the per-body memo bound.
    for (let t = 0; t < 100; t++) expect(memo.keyFor({ ...base, tenant: `t${t}`, body: frozen }, undefined)).toBe(cacheKey({ ...base, tenant: `t${t}`, body: chat }));
  });
});
