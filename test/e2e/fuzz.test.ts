// Fuzzes a real Recall process (node src/main.ts, in front of the mock upstream) with thousands of random and mutated
// requests: valid requests with wrong types, huge numbers, deep nesting, odd unicode, invalid UTF-8, truncated JSON and
// duplicate keys; junk control headers, lying content types and encodings; random paths and methods. It asserts what
// a client and an operator can see: no 5xx that Recall caused (only an upstream's own, when the mock was told to
// fail), every error in OpenAI's shape, no crash, no error logged as a Recall bug, and a heap that does not grow when
// the same round is played again. The PRNG is seeded (RECALL_FUZZ_SEED replays a run); a failure prints the seed.
import { spawn, type ChildProcess } from 'node:child_process';
import { Agent, request as httpRequest } from 'node:http';
import { mkdtempSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { seededRandom, startMockUpstream, type MockUpstream } from '../../loadtest/mock-upstream.js';
import { closedPort } from '../support/recall.js';

const MAIN = new URL('../../src/main.ts', import.meta.url).pathname;
const HEAP_PROBE = new URL('../support/heap-probe.mjs', import.meta.url).pathname;
const SEED = Number(process.env.RECALL_FUZZ_SEED ?? Date.now() % 2 ** 31);
/** Requests per round, and the time a round may take at most (a loaded machine runs fewer). */
const ROUND_REQUESTS = 1_500;
const ROUND_BUDGET_MS = 20_000;
const CONCURRENCY = 6;
/** How much more heap (after GC) the second, identical round may leave behind than the first. */
const HEAP_GROWTH_BOUND = 16 * 1024 * 1024;
const ADMIN_TOKEN = 'fuzz-admin-token';

interface FuzzRequest {
  method: string;
  path: string;
  headers: Record<string, string>;
  body: Buffer | undefined;
  /** The mock upstream was told to fail this one: a 5xx may be the upstream's own. */
  upstreamFault: boolean;
}

class Generator {
  constructor(private readonly random: () => number) {}

  private int(below: number): number {
    return Math.floor(this.random() * below);
  }

  private pick<T>(items: readonly T[]): T {
    return items[this.int(items.length)]!;
  }

  private chance(p: number): boolean {
    return this.random() < p;
  }

  private word(): string {
    return this.pick(['cache', 'tea', 'why', 'sky', 'blue', 'llama', 'proxy', 'seven', '42', 'ok']);
  }

  private sentence(): string {
    return Array.from({ length: 1 + this.int(3) }, () => this.word()).join(' ');
  }

  private messages(): object[] {
    return [{ role: 'system', content: 'be brief' }, { role: 'user', content: this.sentence() }];
  }

  private base(): { path: string; body: Record<string, unknown> } {
    switch (this.int(7)) {
      case 0:
      case 1:
        return { path: '/v1/chat/completions', body: { model: 'gpt-4o-mini', messages: this.messages(), temperature: 0, stream: this.chance(0.3), ...(this.chance(0.3) ? { stream_options: { include_usage: true } } : {}) } };
      case 2:
        return { path: '/v1/completions', body: { model: 'gpt-3.5-turbo-instruct', prompt: this.sentence(), max_tokens: 5, temperature: 0, stream: this.chance(0.2) } };
      case 3:
        return { path: '/v1/embeddings', body: { model: 'text-embedding-3-small', input: this.chance(0.5) ? this.sentence() : [this.sentence(), this.sentence()] } };
      case 4:
        return { path: '/recall/compact', body: { model: 'gpt-4o-mini', messages: [...this.messages(), { role: 'assistant', content: this.sentence() }], target_tokens: 5 + this.int(50), strategy: this.pick(['truncation', 'summary', 'hybrid']) } };
      case 5:
        return { path: '/recall/tools/batch', body: { calls: [{ id: 'a', name: this.word(), arguments: { q: this.word() } }] } };
      default:
        return { path: '/recall/admin/purge', body: this.pick([{ namespace: this.word() }, { key: `default:${'ab'.repeat(32)}` }, { all: true }]) };
    }
  }

  private junkValue(): unknown {
    switch (this.int(12)) {
      case 0: return this.pick([0, -1, 1.5, -0, 2 ** 53 + 1, 1e308, -1e308, 5e-324]);
      case 1: return this.pick([true, false, null]);
      case 2: return this.pick(['', 'x', ' ', '0', 'null', '[DONE]']);
      case 3: return this.pick([[], {}, [null], [[]], { a: {} }, [1, 'two', null]]);
      case 4: return this.nested(50 + this.int(3_000));
      case 5: return this.pick(['😀🚀', 'e\u0301', '\u202eevil', '\u0000nul', '\uffff', '\ud800', '\udc00\ud800', 'ß'.repeat(300), '\u2028\u2029']);
      case 6: return 'long '.repeat(2_000 + this.int(40_000));
      case 7: return Array.from({ length: 200 + this.int(2_000) }, () => ({ role: 'user', content: this.word() }));
      case 8: return { role: this.pick(['user', 'robot', 'assistant', '']), content: this.junkLeaf() };
      case 9: return this.messages();
      case 10: return this.sentence();
      default: return this.junkLeaf();
    }
  }

  private junkLeaf(): unknown {
    return this.pick([42, 'text', null, [], {}, true, -7.25]);
  }

  private nested(depth: number): unknown {
    let value: unknown = 'bottom';
    const asArray = this.chance(0.5);
    for (let i = 0; i < depth; i++) value = asArray ? [value] : { d: value };
    return value;
  }

  /** Replaces, removes or adds one value somewhere in the body (a random walk down from the top). */
  private mutate(body: Record<string, unknown>): void {
    let holder: Record<string, unknown> | unknown[] = body;
    for (let steps = this.int(4); steps > 0; steps--) {
      const keys = Object.keys(holder);
      if (keys.length === 0) break;
      const next = (holder as Record<string, unknown>)[this.pick(keys)];
      if (typeof next !== 'object' || next === null || Object.isFrozen(next)) break;
      holder = next as Record<string, unknown>;
    }
    const keys = Object.keys(holder);
    const action = this.int(4);
    if (action === 0 && keys.length > 0) {
      if (Array.isArray(holder)) holder.splice(Number(this.pick(keys)), 1);
      else delete holder[this.pick(keys)];
    } else if (action === 1 || keys.length === 0) {
      if (Array.isArray(holder)) holder.push(this.junkValue());
      else holder[this.pick(['model', 'messages', 'stream', 'n', 'temperature', 'input', 'prompt', 'role', 'content', 'extra', '__proto__', 'constructor', 'calls'])] = this.junkValue();
    } else {
      const key = this.pick(keys);
      (holder as Record<string, unknown>)[key] = this.junkValue();
    }
  }

  /** Mutations of the bytes themselves, which no JSON value can express. */
  private mangle(text: string): Buffer {
    const bytes = Buffer.from(text);
    switch (this.int(9)) {
      case 0: return bytes.subarray(0, this.int(bytes.length));
      case 1: return Buffer.from(text.replace('{', this.pick(['{"model":123,', '{"messages":null,', '{"stream":"yes",', '{"model":"a","model":"b",'])));
      case 2: {
        const at = this.int(bytes.length);
        return Buffer.concat([bytes.subarray(0, at), Buffer.from(this.pick([[0xff], [0xc3], [0xed, 0xa0, 0x80], [0xf4, 0x90, 0x80, 0x80], [0x00]])), bytes.subarray(at)]);
      }
      case 3: {
        const copy = Buffer.from(bytes);
        if (copy.length > 0) copy[this.int(copy.length)] = this.int(256);
        return copy;
      }
      case 4: return Buffer.concat([Buffer.from([0xef, 0xbb, 0xbf]), bytes]);
      case 5: return Buffer.from(text.replace(/:(\d+)/, ':1e999').replace('"temperature":0', '"temperature":123456789012345678901234567890'));
      case 6: return Buffer.alloc(0);
      case 7: return Buffer.from(Array.from({ length: this.int(300) }, () => this.int(256)));
      default: return Buffer.from(this.pick(['null', '[]', '"text"', '1', 'true', '{}', '{"a":1}{"b":2}']));
    }
  }

  private headers(path: string): { headers: Record<string, string>; upstreamFault: boolean } {
    const headers: Record<string, string> = {};
    const maybe = (name: string, p: number, values: readonly string[]) => {
      if (this.chance(p)) headers[name] = this.pick(values);
    };
    maybe('content-type', 0.9, ['application/json', 'application/json; charset=utf-8', 'text/plain', 'application/x-www-form-urlencoded', 'multipart/form-data; boundary=x', 'garbage/', 'application/json; charset=latin1']);
    maybe('content-encoding', 0.08, ['gzip', 'br', 'deflate', 'identity', 'x-junk', 'gzip, gzip']);
    maybe('cache-control', 0.25, ['no-store', 'no-cache', 'max-age=0', 'max-age=abc', 'max-age=-5', 'max-age=99999999999999999999', 'stale-if-error=oops', ',,,', 'no-cache, max-age=10', 'private="x', 'max-age=1e3']);
    maybe('x-recall-ttl', 0.1, ['-1', 'abc', '1e9', '0', '99999999999999999', '60', ' 60 ']);
    maybe('x-recall-namespace', 0.1, ['', 'a'.repeat(200), 'ns/../x', 'ok', 'with space', 'ñandú', 'team-1']);
    maybe('x-recall-semantic', 0.1, ['off', '0.93', '2', '-1', 'NaN', 'junk', '']);
    maybe('x-recall-priority', 0.1, ['high', 'low', 'urgent', '', 'HIGH']);
    maybe('x-recall-compact', 0.05, ['auto', 'junk', '1', '']);
    maybe('authorization', 0.8, path.startsWith('/recall/admin') ? [`Bearer ${ADMIN_TOKEN}`, 'Bearer wrong', `bearer ${ADMIN_TOKEN}`, ''] : ['Bearer sk-fuzz-a', 'Bearer sk-fuzz-b', 'Basic Zm9vOmJhcg==', 'Bearer', '']);
    maybe('x-padding', 0.01, ['p'.repeat(40_000)]);
    let upstreamFault = false;
    if (this.chance(0.05)) {
      // A tenant of their own: requests of one tenant join each other's upstream calls (coalescing, embeddings
      // batches), so a fault asked for by one would reach the others.
      headers.authorization = 'Bearer sk-fuzz-faulty-tenant';
      headers['x-mock-fault'] = this.pick(['500', '502', '503', '504', '429', '401', 'broken-stream', 'garbage-stream', 'no-done', 'error-event', 'split-stream']);
      upstreamFault = true;
    }
    return { headers, upstreamFault };
  }

  next(): FuzzRequest {
    const base = this.base();
    let path = base.path;
    let method = 'POST';
    if (this.chance(0.12)) {
      path = this.pick(['/v1/models', `/v1/${this.word()}`, '/v1/chat/completions/extra', `/recall/admin/entries/${this.word()}`, `/recall/admin/entries/default:${'cd'.repeat(32)}`, `/recall/admin/entries/${'k'.repeat(150)}`,
        '/%', '/v1/%E0%A4%A', '/v1/chat/completions?stream=true&x=%ZZ', `/${'a'.repeat(3_000)}`, '//v1//chat/completions', '/recall/stats', '/metrics', '/healthz', '/recall/dashboard', '/readyz']);
    }
    if (this.chance(0.1)) method = this.pick(['GET', 'PUT', 'DELETE', 'PATCH', 'OPTIONS', 'HEAD']);
    for (let n = this.int(4); n > 0; n--) this.mutate(base.body);
    const text = JSON.stringify(base.body);
    const body = this.chance(0.2) ? this.mangle(text) : Buffer.from(text);
    const { headers, upstreamFault } = this.headers(path);
    return { method, path, headers, body: method === 'GET' || method === 'HEAD' ? undefined : body, upstreamFault };
  }
}

interface Outcome {
  status: number | 'reset' | 'unsendable';
  body: string;
}

/**
 * Sends one request. A reset on a reused keep-alive socket is retried once on a fresh connection, as Node's docs advise
 * (the server may close an idle socket as the client reuses it); a reset on a fresh connection is an outcome.
 */
async function send(baseUrl: URL, agent: Agent, fuzz: FuzzRequest): Promise<Outcome> {
  const first = await sendOnce(baseUrl, agent, fuzz);
  return first.status === 'reset' && first.reusedSocket ? sendOnce(baseUrl, false, fuzz) : first;
}

function sendOnce(baseUrl: URL, agent: Agent | false, fuzz: FuzzRequest): Promise<Outcome & { reusedSocket?: boolean }> {
  return new Promise((resolve) => {
    let req: ReturnType<typeof httpRequest>;
    try {
      req = httpRequest({ host: baseUrl.hostname, port: baseUrl.port, method: fuzz.method, path: fuzz.path, headers: fuzz.headers, agent }, (res) => {
        const pieces: Buffer[] = [];
        let size = 0;
        res.on('data', (piece: Buffer) => {
          if (size < 16 * 1024 * 1024) pieces.push(piece);
          size += piece.length;
        });
        res.on('end', () => resolve({ status: res.statusCode!, body: Buffer.concat(pieces).toString('utf8') }));
        res.on('error', () => resolve({ status: 'reset', body: '' }));
      });
    } catch {
      // The client library refuses it (e.g. a path it will not send): nothing reached Recall.
      return resolve({ status: 'unsendable', body: '' });
    }
    req.on('error', () => resolve({ status: 'reset', body: '', reusedSocket: req.reusedSocket }));
    req.end(fuzz.body);
  });
}

/** What is wrong with an answer, or undefined. */
function problemWith(fuzz: FuzzRequest, outcome: Outcome): string | undefined {
  if (outcome.status === 'unsendable') return undefined;
  // Recall closes the connection after a 431 (a head too large), and cuts an answer passed through as it comes when
  // the upstream cut it (the status was already sent); a reset is acceptable there only.
  if (outcome.status === 'reset') return fuzz.headers['x-padding'] === undefined && !fuzz.upstreamFault ? 'connection reset' : undefined;
  if (outcome.status >= 500 && !fuzz.upstreamFault) return `status ${outcome.status} without an upstream fault`;
  if (outcome.status < 400 || fuzz.method === 'HEAD') return undefined;
  let error: unknown;
  try {
    error = (JSON.parse(outcome.body) as { error?: unknown }).error;
  } catch {
    // A faulty upstream's own answer (garbage-stream sends `{not json`) passes through unchanged, as it should.
    return fuzz.upstreamFault ? undefined : `status ${outcome.status} with a body that is not JSON`;
  }
  if (typeof error !== 'object' || error === null) return `status ${outcome.status} without an error object`;
  const keys = Object.keys(error).sort().join(',');
  if (keys !== 'code,message,param,type') return `status ${outcome.status}: error keys ${keys}`;
  const { code, message } = error as { code: unknown; message: unknown };
  if (code === 'internal_error') return `internal_error: ${String(message)}`;
  if (typeof message !== 'string' || /\bat .+\.(js|ts):\d+/.test(message)) return 'message is not a plain string';
  return undefined;
}

interface Started {
  child: ChildProcess;
  stdout: () => string;
  stderr: () => string;
}

let mock: MockUpstream;
let recall: Started;
let baseUrl: URL;

beforeAll(async () => {
  mock = await startMockUpstream();
  const port = await closedPort();
  const dir = mkdtempSync(join(tmpdir(), 'recall-fuzz-'));
  writeFileSync(join(dir, 'recall.yaml'), [
    'server:', `  port: ${port}`, 'upstream:', `  url: ${mock.baseURL}`, '  retries: 0', '  headers_timeout_ms: 5000',
    'admin:', `  token: ${ADMIN_TOKEN}`, 'log:', '  level: warn', '',
  ].join('\n'));
  const clean = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('RECALL_')));
  const child = spawn(process.execPath, ['--expose-gc', '--import', 'tsx', '--import', HEAP_PROBE, MAIN], {
    env: { ...clean, RECALL_CONFIG: join(dir, 'recall.yaml') }, stdio: ['ignore', 'pipe', 'pipe'],
  });
  let out = '';
  let err = '';
  child.stdout!.on('data', (d) => (out += d));
  child.stderr!.on('data', (d) => (err += d));
  recall = { child, stdout: () => out, stderr: () => err };
  baseUrl = new URL(`http://127.0.0.1:${port}`);
  for (let i = 0; ; i++) {
    if (child.exitCode !== null) throw new Error(`recall exited: ${err}`);
    try {
      if ((await fetch(`${baseUrl.origin}/healthz`)).ok) break;
    } catch { /* not listening yet */ }
    if (i > 400) throw new Error('recall did not become healthy');
    await new Promise((r) => setTimeout(r, 50));
  }
}, 30_000);

afterAll(async () => {
  if (recall?.child.exitCode === null) {
    const exited = new Promise((resolve) => recall.child.once('exit', resolve));
    recall.child.kill('SIGTERM');
    await exited;
  }
  await mock?.close();
});

async function heapUsed(): Promise<number> {
  const before = recall.stderr().length;
  recall.child.kill('SIGUSR2');
  for (let i = 0; i < 200; i++) {
    const found = /heap-used (\d+)/.exec(recall.stderr().slice(before));
    if (found) return Number(found[1]);
    await new Promise((r) => setTimeout(r, 25));
  }
  throw new Error('the heap probe did not answer');
}

async function round(failures: string[]): Promise<number> {
  const generator = new Generator(seededRandom(SEED));
  const requests = Array.from({ length: ROUND_REQUESTS }, () => generator.next());
  const agent = new Agent({ keepAlive: true, maxSockets: CONCURRENCY });
  const deadline = Date.now() + ROUND_BUDGET_MS;
  let next = 0;
  const worker = async () => {
    while (next < requests.length && Date.now() < deadline) {
      const index = next++;
      const fuzz = requests[index]!;
      const outcome = await send(baseUrl, agent, fuzz);
      const problem = problemWith(fuzz, outcome);
      if (problem !== undefined && failures.length < 20) {
        failures.push(`#${index} ${fuzz.method} ${fuzz.path.slice(0, 80)} ${JSON.stringify(fuzz.headers).slice(0, 200)} body=${JSON.stringify(fuzz.body?.toString('utf8').slice(0, 200))}: ${problem} ${outcome.body.slice(0, 300)}`);
      }
    }
  };
  await Promise.all(Array.from({ length: CONCURRENCY }, worker));
  agent.destroy();
  return next;
}

describe(`fuzzing Recall (seed ${SEED}; replay with RECALL_FUZZ_SEED=${SEED})`, () => {
  it('survives random and mutated requests: no 5xx of its own, errors in OpenAI shape, no crash, bounded heap', async () => {
    const failures: string[] = [];
    const sentFirst = await round(failures);
    const heapAfterFirst = await heapUsed();
    const sentSecond = await round(failures);
    const heapAfterSecond = await heapUsed();
    const context = `seed ${SEED} (replay with RECALL_FUZZ_SEED=${SEED}); ${sentFirst} + ${sentSecond} requests; heap after GC ${heapAfterFirst} then ${heapAfterSecond} bytes`;

    expect(failures, context).toEqual([]);
    expect(recall.child.exitCode, context).toBeNull();
    expect(sentFirst + sentSecond, context).toBeGreaterThan(500);
    // Recall logs its own bugs (internal_error) at level error with this message; none may appear.
    const bugs = recall.stdout().split('\n').filter((line) => line.includes('Recall failed to handle this request'));
    expect(bugs.slice(0, 3), context).toEqual([]);
    expect(recall.stderr().replace(/heap-used \d+\n/g, '').replace(/.*DEPRECATED.*\n/g, ''), context).toBe('');
    expect(heapAfterSecond - heapAfterFirst, context).toBeLessThan(HEAP_GROWTH_BOUND);
    // And it still answers a plain request.
    const plain = await fetch(`${baseUrl.origin}/v1/chat/completions`, {
      method: 'POST', headers: { 'content-type': 'application/json', authorization: 'Bearer sk-fuzz-a' },
      body: JSON.stringify({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: 'still there?' }] }),
    });
    expect(plain.status, context).toBe(200);
  }, 90_000);
});
