// A Redis Cluster master is SIGKILLed while three Recall instances serve a steady, bounded stream of requests: its
// replica takes over, every request still succeeds (lookups on the lost master fail open and go upstream), and hits
// on the keys it held resume from the replica's copy. The master killed is the one holding the semantic stream, which
// keeps sharing vectors afterwards. The figures printed at the end are in docs/RELIABILITY.md.
import OpenAI from 'openai';
import { Redis } from 'ioredis';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { startMockUpstream, type MockUpstream } from '../../../loadtest/mock-upstream.js';
import { sample, scrape } from '../../support/metrics.js';
import { eventually, startRecall, type RunningRecall } from '../../support/recall.js';
import { startThrowawayCluster, type ThrowawayCluster } from '../../support/redis-cluster.js';

const PREFIX = 'recall-failover-test:';
const PROMPTS = 48;
const WORKERS = 6;
/** Bounds of the load: it stops by itself after this long or this many requests, whichever comes first. */
const MAX_LOAD_MS = 60_000;
const MAX_REQUESTS = 30_000;

let cluster: ThrowawayCluster;
let mock: MockUpstream;
let instances: RunningRecall[];

interface Outcome {
  sentAt: number;
  at: number;
  prompt: number;
  cache: string | null;
  error?: string;
}

const vectorsOn = async (instance: RunningRecall) => sample(await scrape(instance.url), 'recall_semantic_vectors');
const chat = (i: number): OpenAI.Chat.ChatCompletionCreateParamsNonStreaming => ({
  model: 'gpt-4o-mini', messages: [{ role: 'user', content: `failover prompt ${i} of run ${process.pid}: what is a replica?` }],
});

beforeAll(async () => {
  cluster = await startThrowawayCluster();
  mock = await startMockUpstream();
  // A command timeout that a loaded, shared machine meets; a lookup on the dead master fails open after it. The
  // prompts differ only in a number, which the semantic guards keep apart: every answer is an exact HIT or a MISS.
  const settings = { 'upstream.url': mock.baseURL, 'redis.cluster': cluster.seeds, 'redis.key_prefix': PREFIX, 'redis.command_timeout_ms': 500 };
  instances = [await startRecall(settings), await startRecall(settings), await startRecall(settings)];
}, 120_000);
afterAll(async () => {
  await Promise.all((instances ?? []).map((i) => i.close()));
  await mock?.close();
  await cluster?.stop();
});

describe('Redis Cluster failover under load', () => {
  it('a killed master is replaced by its replica; no request fails and hits resume', async () => {
    // Warm every prompt once and learn which master holds each entry.
    const expected: string[] = [];
    const holder: number[] = [];
    for (let i = 0; i < PROMPTS; i++) {
      const answer = await instances[0]!.client().chat.completions.create(chat(i)).withResponse();
      expected.push(answer.data.choices[0]!.message.content!);
      holder.push(await cluster.masterOf(PREFIX + answer.response.headers.get('x-recall-key')!));
    }
    const victim = await cluster.masterOf(`recall-meta:${PREFIX}semantic`);
    const lost = new Set(holder.flatMap((port, i) => (port === victim ? [i] : [])));
    // Every write has reached the victim's replica before it dies, so the entries survive the failover.
    const node = new Redis(victim, '127.0.0.1');
    expect(await node.call('WAIT', '1', '5000')).toBe(1);
    node.disconnect();

    const outcomes: Outcome[] = [];
    const started = Date.now();
    let stop = false;
    let sent = 0;
    const worker = async (w: number) => {
      while (!stop && sent < MAX_REQUESTS && Date.now() - started < MAX_LOAD_MS) {
        const prompt = sent++ % PROMPTS;
        const sentAt = Date.now();
        const client = instances[(w + prompt) % instances.length]!.client();
        try {
          const answer = await client.chat.completions.create(chat(prompt)).withResponse();
          const right = answer.data.choices[0]?.message.content === expected[prompt];
          outcomes.push({ sentAt, at: Date.now(), prompt, cache: answer.response.headers.get('x-recall-cache'), ...(right ? {} : { error: 'wrong answer' }) });
        } catch (err) {
          outcomes.push({ sentAt, at: Date.now(), prompt, cache: null, error: String(err) });
        }
      }
    };
    const load = Promise.all(Array.from({ length: WORKERS }, (_, w) => worker(w)));

    await new Promise((resolve) => setTimeout(resolve, 1_000));
    const killedAt = Date.now();
    await cluster.kill(victim);
    await cluster.settled();
    const failoverMs = Date.now() - killedAt;
    // Wait (within the load's own bound) until a lost key is a hit again, then keep the load on until every prompt has
    // been sent once more after that, 1 s at least: the last answer of each lost key then comes from after the switch.
    const hitAgain = () => outcomes.find((o) => o.sentAt > killedAt && lost.has(o.prompt) && o.cache === 'HIT');
    const waitUntil = async (done: () => boolean) => {
      while (!done() && Date.now() - started < MAX_LOAD_MS) await new Promise((resolve) => setTimeout(resolve, 50));
    };
    await waitUntil(() => hitAgain() !== undefined);
    const after = Date.now();
    await waitUntil(() => Date.now() - after >= 1_000 && new Set(outcomes.filter((o) => o.sentAt > after).map((o) => o.prompt)).size === PROMPTS);
    stop = true;
    await load;

    const failures = outcomes.filter((o) => o.error !== undefined);
    const afterKill = outcomes.filter((o) => o.at > killedAt);
    const lostMisses = afterKill.filter((o) => lost.has(o.prompt) && o.cache !== 'HIT');
    const otherMisses = afterKill.filter((o) => !lost.has(o.prompt) && o.cache !== 'HIT');
    const tally = (list: Outcome[]) => {
      const counts = new Map<string, number>();
      for (const o of list) counts.set(o.cache ?? 'error', (counts.get(o.cache ?? 'error') ?? 0) + 1);
      return [...counts].map(([cache, n]) => `${cache} ${n}`).join(', ') || 'none';
    };
    const lastLostMiss = lostMisses.at(-1)?.at ?? killedAt;
    const resumed = hitAgain();
    console.log(`cluster failover: ${outcomes.length} requests (${WORKERS} workers over ${instances.length} instances, ${PROMPTS} prompts, ${lost.size} on the killed master), `
      + `${failures.length} failed; replica took over after ${failoverMs} ms; first hit on a lost key ${resumed === undefined ? 'never' : `${resumed.at - killedAt} ms`} after the kill; `
      + `${lostMisses.length} answers of lost keys (${tally(lostMisses)}) and ${otherMisses.length} of other keys (${tally(otherMisses)}) were not hits after the kill, the last lost-key one ${lastLostMiss - killedAt} ms after it; `
      + `upstream calls during the run: ${mock.stats().byRoute['POST /v1/chat/completions'] ?? 0}`);

    expect(lost.size).toBeGreaterThan(0);
    expect(failures).toEqual([]);
    expect(outcomes.filter((o) => o.cache !== 'HIT' && o.cache !== 'MISS')).toEqual([]);
    // While the replica was not yet in charge, lookups of the lost keys failed open (answered from the upstream) after
    // redis.command_timeout_ms rather than waiting out the switch, which takes longer than cluster-node-timeout (1 s).
    expect(lostMisses.length).toBeGreaterThan(0);
    expect(resumed).toBeDefined();
    // Once the replica answers, the lost keys are hits again: the last requests of each lost key are hits.
    for (const prompt of lost) {
      const last = outcomes.filter((o) => o.prompt === prompt).at(-1);
      expect(last?.cache, `prompt ${prompt}`).toBe('HIT');
    }

    // The semantic stream lived on the killed master: a new entry still reaches the other instances, from the replica.
    const [a, b] = instances as [RunningRecall, RunningRecall];
    const before = await vectorsOn(b);
    const question = `after the failover ${process.pid}: which houseplants survive a dark flat for 3 weeks?`;
    const stored = await a.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question }] });
    await eventually(async () => (await vectorsOn(b)) > before, 'the other instance indexed the new vector');
    const variant = await b.client().chat.completions.create({ model: 'gpt-4o-mini', messages: [{ role: 'user', content: question.toUpperCase() }] }).withResponse();
    expect(variant.response.headers.get('x-recall-cache')).toBe('SEMANTIC');
    expect(variant.data).toEqual(stored);
  }, 120_000);
});
