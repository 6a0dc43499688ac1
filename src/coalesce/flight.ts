// One upstream call and every request waiting for its answer: the one that started it and the identical ones that
// joined while it was in flight. A stream fans out live (a late joiner first gets what was already relayed), a plain
// request gets the assembled completion, an upstream error reaches everyone (except those that accept a stale entry
// in its place, RFC 5861 stale-if-error), and the call is aborted only when nobody waits any more.
import { EventEmitter } from 'node:events';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import { markCoalesced, markForwarded, type ForwardReason } from '../cache/cache-status.js';
import { allowsStale, withinGrace, type StaleIfError } from '../cache/stale.js';
import type { CacheEntry } from '../cache/store.js';
import type { RecallConfig } from '../config/schema.js';
import { StreamAssembler, type CompletionRoute } from '../openai/assemble.js';
import { RecallError, brokenStream } from '../openai/errors.js';
import { renderCompletionStream } from '../openai/render.js';
import { SseEventFramer, sseErrorEvent, withoutUsageChunk } from '../openai/sse.js';
import { isCompletionObject, isJson } from '../openai/wire.js';
import { asUpstreamError, isEventStream, readWhole, type UpstreamResponse } from '../upstream/client.js';
import { clientResponseHeaders, type HeaderMap } from '../upstream/headers.js';
import { markFirstEvent } from '../proxy/request-context.js';
import { sendCachedAnswer } from '../proxy/cached-answer.js';

/** One request waiting on a flight. */
export interface FlightMember {
  request: FastifyRequest;
  reply: FastifyReply;
  /** Wants server-sent events. */
  stream: boolean;
  /** Asked for the usage chunk (`stream_options.include_usage`). */
  includeUsage: boolean;
  /** Why it went forward (RFC 9211 `fwd`): miss, stale, request (no-cache), bypass (no-store). */
  reason: ForwardReason;
  /** Seconds to store the answer for; undefined when this request forbids storing (no-store). */
  storeTtlS: number | undefined;
  /** Set when the request accepts an expired entry in place of an upstream failure (stale-if-error). */
  staleIfError?: StaleIfError | undefined;
}

export interface FlightSource {
  route: CompletionRoute;
  /** Sends the first request upstream; the signal fires when nobody waits any more. */
  call(signal: FlightSignal): Promise<UpstreamResponse>;
  /** Stores a completion under the flight's key; false when it was not stored. */
  store(body: Buffer, ttlS: number): Promise<boolean>;
  /** The flight key's entry, fresh or expired, while the store keeps it; undefined when none (or the store failed). */
  stale(): Promise<CacheEntry | undefined>;
  upstream: RecallConfig['upstream'];
  /** Caps on joiners and on the events kept for late streaming joiners. */
  maxFollowers: number;
  maxReplayBytes: number;
  /** Called once when the flight stops taking joiners (answered, failed or abandoned). */
  onFinish(): void;
  /** A member that did not call upstream itself got an answer with these token counts. */
  onCoalesced(member: FlightMember, body: Buffer | undefined): void;
}

/** Fires 'abort' when the last waiting request leaves; undici takes it as the upstream call's signal. */
export class FlightSignal extends EventEmitter {
  aborted = false;

  abort(): void {
    if (this.aborted) return;
    this.aborted = true;
    this.emit('abort');
  }
}

interface Waiter {
  member: FlightMember;
  /** The first member started the flight; every other one joined it. */
  leader: boolean;
  /** Settles the member's handler: with its reply once an answer is being sent, or with the error to answer. */
  settle(result: FastifyReply | RecallError): void;
  /** The event stream sent to a streaming member, once the answer's headers are known. */
  out: Readable | undefined;
  done: boolean;
}

const HTTP_OK = 200;

export class Flight {
  readonly signal = new FlightSignal();
  private readonly waiters = new Set<Waiter>();
  private finished = false;
  /** Set once the upstream answered with an event stream: its status and headers, and the events so far. */
  private streamHead: { status: number; headers: HeaderMap } | undefined;
  private replay: Buffer[] = [];
  private replayBytes = 0;
  private replayable = true;
  private followers = 0;
  private storeTtlS: number | undefined;
  /** The answer came from another instance's flight (through the shared store), not from an upstream call here. */
  private remote = false;
  /** The completion the upstream call produced (a successful whole answer, or an assembled stream), or the entry. */
  private completion: Buffer | undefined;
  /** Every member that joined, those that left included: each one's token spend is settled when the flight ends. */
  private readonly members: FlightMember[] = [];

  constructor(private readonly source: FlightSource) {}

  /** Can this request still join? Not once answered, not past the follower cap, not a stream past the replay cap. */
  joinable(member: FlightMember): boolean {
    if (this.finished || this.followers >= this.source.maxFollowers) return false;
    return !(member.stream && this.streamHead !== undefined && !this.replayable);
  }

  /** Adds a request; resolves with its reply once its answer is being sent, rejects with the error to answer. */
  join(member: FlightMember): Promise<FastifyReply> {
    const leader = this.waiters.size === 0 && this.followers === 0;
    if (!leader) this.followers++;
    if (member.storeTtlS !== undefined) this.storeTtlS ??= member.storeTtlS;
    this.members.push(member);
    return new Promise<FastifyReply>((resolve, reject) => {
      const waiter: Waiter = {
        member, leader, out: undefined, done: false,
        settle: (result) => {
          if (waiter.done) return;
          waiter.done = true;
          if (result instanceof RecallError) reject(result);
          else resolve(result);
        },
      };
      this.waiters.add(waiter);
      // What the request log says if the client leaves before its answer; set again when the answer is sent.
      member.request.recall.cacheOutcome = leader ? (member.reason === 'bypass' ? 'BYPASS' : 'MISS') : 'COALESCED';
      const response = member.reply.raw;
      response.once('close', () => {
        if (!response.writableFinished) this.leave(waiter);
      });
      if (this.streamHead !== undefined && member.stream) this.startStream(waiter, this.streamHead);
    });
  }

  /** Answers every member from the upstream call; resolves when the flight is over. */
  async fromUpstream(): Promise<void> {
    const sentAt = performance.now();
    let response: UpstreamResponse;
    try {
      response = await this.source.call(this.signal);
    } catch (err) {
      await this.fail(asUpstreamError(err, this.source.upstream));
      return;
    }
    try {
      if (isEventStream(response) && response.status >= 200 && response.status < 300) await this.relayStream(response);
      else await this.relayWhole(response);
    } finally {
      for (const waiter of this.waiters) if (waiter.leader) waiter.member.request.recall.upstreamMs = performance.now() - sentAt;
    }
  }

  /** Answers every member from an entry another instance stored while this one waited for it. */
  fromEntry(body: Buffer): void {
    this.remote = true;
    this.completion = body;
    this.finish();
    for (const waiter of this.waiters) this.sendWhole(waiter, HTTP_OK, { 'content-type': 'application/json' }, body, true, false);
  }

  /** True once every member has left. */
  get abandoned(): boolean {
    return this.signal.aborted;
  }

  private async relayWhole(response: UpstreamResponse): Promise<void> {
    let body: Buffer;
    try {
      body = await readWhole(response, this.source.upstream);
    } catch (err) {
      await this.fail(asUpstreamError(err, this.source.upstream));
      return;
    }
    const ok = response.status >= 200 && response.status < 300;
    const completion = ok && isCompletionObject(body);
    if (completion) this.completion = body;
    // A success that is not even JSON would reach the SDKs as a parse error (a stream member's too): a clean 502.
    if (ok && !completion && !isJson(body)) return await this.failBroken('answered with a body that is not valid JSON');
    // Stored before it is sent: a client that repeats the request at once gets a hit.
    const stored = completion && this.storeTtlS !== undefined && !this.signal.aborted && (await this.source.store(body, this.storeTtlS));
    this.finish();
    const headers = clientResponseHeaders(response.headers);
    // The upstream's error passes through as it is, except to members that accept a stale entry in its place.
    await this.staleOr(response.status, (waiter) => this.sendWhole(waiter, response.status, headers, body, completion, stored));
  }

  private async relayStream(response: UpstreamResponse): Promise<void> {
    const head = { status: response.status, headers: clientResponseHeaders(response.headers) };
    this.streamHead = head;
    for (const waiter of this.waiters) if (waiter.member.stream) this.startStream(waiter, head);
    const framer = new SseEventFramer();
    const assembler = new StreamAssembler(this.source.route);
    let completion: Buffer | undefined;
    try {
      for await (const chunk of response.body) {
        const events = framer.push(chunk as Buffer);
        if (events === undefined) continue;
        if (!assembler.done) {
          assembler.push(events);
          // Stored before the terminal event goes out: a client that repeats the request at once gets a hit.
          if (assembler.done) this.completion = completion = await this.storeAssembled(assembler);
          // Data that is not JSON would make the SDKs throw a parse error: the stream ends here with a clean error event.
          const broken = assembler.brokenBy(false);
          if (broken !== undefined) return await this.failBroken(broken);
        }
        this.keepForReplay(events);
        for (const waiter of this.waiters) if (waiter.out !== undefined) this.push(waiter, events);
      }
      // A well-formed stream that stops before [DONE] is cut short: it is not stored, and its clients are told so.
      const cut = assembler.brokenBy(true);
      if (cut !== undefined) return await this.failBroken(cut);
      const rest = framer.flush();
      if (rest !== undefined) for (const waiter of this.waiters) if (waiter.out !== undefined) waiter.out.push(rest);
    } catch (err) {
      framer.discard();
      if (this.signal.aborted) return this.finish();
      const failure = asUpstreamError(err, this.source.upstream);
      this.firstLog()?.warn({ err: failure }, 'upstream stream failed');
      return await this.fail(failure);
    }
    this.finish();
    const plain = { ...head.headers, 'content-type': 'application/json' };
    // A stream that ended without its final event leaves plain members without an answer: a failure, as a broken one.
    const broken = completion === undefined ? brokenStream('ended its stream before the final event') : undefined;
    await this.staleOr(broken?.status ?? HTTP_OK, (waiter) => {
      if (waiter.out !== undefined) {
        waiter.out.push(null);
        if (!waiter.leader) this.source.onCoalesced(waiter.member, completion);
      } else if (completion !== undefined) {
        this.sendWhole(waiter, HTTP_OK, plain, completion, true, false);
      } else if (broken !== undefined) {
        waiter.settle(broken);
      }
    });
  }

  /** The assembled completion, stored when some member wants it stored; undefined when the stream cannot be reproduced. */
  private async storeAssembled(assembler: StreamAssembler): Promise<Buffer | undefined> {
    const result = assembler.result();
    if (result === undefined) return undefined;
    const body = Buffer.from(JSON.stringify(result));
    if (this.storeTtlS !== undefined && !this.signal.aborted) await this.source.store(body, this.storeTtlS);
    return body;
  }

  private startStream(waiter: Waiter, head: { status: number; headers: HeaderMap }): void {
    const out = new Readable({ read() {} });
    waiter.out = out;
    this.mark(waiter, false);
    waiter.settle(waiter.member.reply.code(head.status).headers(head.headers).send(out));
    for (const events of this.replay) this.push(waiter, events);
  }

  /** Sends a whole answer: as it is, or as a rendered stream to a member that asked for one. */
  private sendWhole(waiter: Waiter, status: number, headers: HeaderMap, body: Buffer, completion: boolean, stored: boolean): void {
    const { member } = waiter;
    let payload: Buffer | string = body;
    let sent = headers;
    if (member.stream && completion) {
      try {
        const renderFrom = performance.now();
        payload = renderCompletionStream(this.source.route, body, member.includeUsage);
        member.request.recall.renderMs += performance.now() - renderFrom;
        sent = { ...headers, 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' };
      } catch {
        // Not a readable completion after all: every member gets it as the upstream sent it.
      }
    }
    this.mark(waiter, stored);
    if (payload !== body) markFirstEvent(member.request.recall);
    if ((!waiter.leader || this.remote) && completion) this.source.onCoalesced(member, body);
    waiter.settle(member.reply.code(status).headers(sent).send(payload));
  }

  private mark(waiter: Waiter, stored: boolean): void {
    const { member } = waiter;
    if (waiter.leader && !this.remote) {
      markForwarded(member.reply, member.reason, stored);
      member.request.recall.cacheOutcome = member.reason === 'bypass' ? 'BYPASS' : 'MISS';
    } else {
      markCoalesced(member.reply, member.reason, stored);
      member.request.recall.cacheOutcome = 'COALESCED';
    }
  }

  private push(waiter: Waiter, events: Buffer): void {
    const forClient = waiter.member.includeUsage ? events : withoutUsageChunk(events);
    if (forClient.length === 0 || waiter.out === undefined) return;
    markFirstEvent(waiter.member.request.recall);
    waiter.out.push(forClient);
  }

  /** Keeps relayed events for members that join later, up to the cap; past it, streaming members no longer join. */
  private keepForReplay(events: Buffer): void {
    if (!this.replayable) return;
    this.replayBytes += events.length;
    if (this.replayBytes > this.source.maxReplayBytes) {
      this.replayable = false;
      this.replay = [];
      return;
    }
    this.replay.push(events);
  }

  /** Ends a stream the upstream sent malformed: logged as an upstream failure, and nothing is stored. */
  private async failBroken(what: string): Promise<void> {
    const failure = brokenStream(what);
    this.firstLog()?.warn({ err: failure }, 'upstream stream failed');
    await this.fail(failure);
  }

  /**
   * Answers every member still waiting with this error (an event-stream error to those already streaming), or with a
   * stale entry where the member accepts one.
   */
  async fail(failure: RecallError): Promise<void> {
    this.finish();
    await this.staleOr(failure.status, (waiter) => {
      if (waiter.out === undefined) return waiter.settle(failure);
      waiter.out.push(sseErrorEvent(failure.toBody()));
      waiter.out.push(null);
    });
  }

  /**
   * The one place a failure meets stale-if-error: when `status` is an error in RFC 5861's sense, each member whose
   * answer has not started and that accepts the key's expired entry gets it (as JSON or as a rendered stream, marked
   * STALE); every other member gets `otherwise`. The store is read only when some member can use what it holds.
   */
  private async staleOr(status: number, otherwise: (waiter: Waiter) => void): Promise<void> {
    let entry: CacheEntry | undefined;
    if (allowsStale(status) && [...this.waiters].some((w) => w.out === undefined && w.member.staleIfError !== undefined)) entry = await this.source.stale();
    const now = Date.now();
    let served = 0;
    for (const waiter of this.waiters) {
      if (entry !== undefined && waiter.out === undefined && this.sendStale(waiter, entry, status, now)) served++;
      else otherwise(waiter);
    }
    if (served > 0) this.firstLog()?.warn({ status, served }, 'upstream failed; answered from an expired entry (stale-if-error)');
  }

  /** Sends the expired entry in place of a failure; false when this member does not accept it (or it is unreadable). */
  private sendStale(waiter: Waiter, entry: CacheEntry, failedStatus: number, now: number): boolean {
    const { member } = waiter;
    const accepts = member.staleIfError;
    if (accepts === undefined || !withinGrace(entry, accepts, now)) return false;
    let reply: FastifyReply;
    try {
      const renderFrom = performance.now();
      reply = sendCachedAnswer(member.reply, entry, { route: this.source.route, stream: member.stream, includeUsage: member.includeUsage, stale: { failedStatus, accepts } }, now);
      member.request.recall.renderMs += performance.now() - renderFrom;
    } catch {
      return false;
    }
    member.request.recall.cacheOutcome = 'STALE';
    if (member.stream) markFirstEvent(member.request.recall);
    waiter.settle(reply);
    return true;
  }

  private leave(waiter: Waiter): void {
    this.waiters.delete(waiter);
    waiter.out?.destroy();
    waiter.settle(new RecallError('clientClosedRequest', 'The client closed the connection before the answer was complete.'));
    if (this.waiters.size > 0 || this.finished) return;
    // Nobody waits any more: the upstream call is dropped, and nothing it might still send is stored.
    this.finish();
    this.signal.abort();
  }

  private finish(): void {
    if (this.finished) return;
    this.finished = true;
    this.replay = [];
    this.source.onFinish();
    // Every member's token spend (the caller's reservation, and with limits.hits_spend_tokens each follower's arrival
    // reservation) is corrected to the usage of the answer they share; no answer gives the reservations back.
    for (const member of this.members) member.request.recall.spend?.settle(this.completion);
    this.members.length = 0;
  }

  private firstLog(): FastifyRequest['log'] | undefined {
    for (const waiter of this.waiters) return waiter.member.request.log;
    return undefined;
  }
}
