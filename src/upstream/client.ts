// The connection to the upstream API: one keep-alive undici Pool behind the upstream queue and the retries, path
// mapping under the configured base URL, and the translation of transport failures into Recall's 502/504 errors.
import type { IncomingHttpHeaders } from 'node:http';
import type { Readable } from 'node:stream';
import { Pool, type Dispatcher } from 'undici';
import type { RecallConfig } from '../config/schema.js';
import { RecallError, clientClosedRequest } from '../openai/errors.js';
import { delay, type CallSignal } from './abort.js';
import type { HeaderMap } from './headers.js';
import { UpstreamLimiter, type QueueObserver } from './limiter.js';
import type { Priority } from './priority.js';
import { RetryPolicy, type RetryDecision, type RetryReason } from './retry.js';

export interface UpstreamRequest {
  method: string;
  /** Path below the base URL's `/v1`, with query: `/chat/completions`, `/models?limit=2`. */
  path: string;
  headers: HeaderMap;
  body?: Buffer | Readable | undefined;
  /** Aborts the call, wherever it is: waiting in the queue, sleeping before a retry, or in flight. */
  signal?: CallSignal | undefined;
  /** X-Recall-Priority of the request this call serves; orders waiting calls when the upstream is at its cap. */
  priority?: Priority | undefined;
  /** Receives the time this call waited for a slot, every attempt's wait added. */
  timing?: QueueTiming | undefined;
}

export interface UpstreamResponse {
  status: number;
  headers: IncomingHttpHeaders;
  body: Dispatcher.ResponseData['body'];
}

/** What the client reports as it works: the queue's figures, each retry and each failed attempt. The metrics catalog implements it. */
export interface UpstreamObserver extends QueueObserver {
  upstreamRetry(reason: RetryReason): void;
  /** An attempt answered this status (>= 400), or failed without an answer or in the middle of it. */
  upstreamError(failure: number | 'unreachable' | 'timeout' | 'broken_response'): void;
}

/** Where a request's wait for an upstream slot is added up (the request context), for the slow-request log. */
export interface QueueTiming {
  queueMs: number;
}

export interface ProbeResult {
  ok: boolean;
  detail: string;
  latencyMs: number;
  checkedAt: string;
}

export class UpstreamClient {
  private readonly pool: Pool;
  private readonly basePath: string;
  private readonly settings: RecallConfig['upstream'];
  private readonly limiter: UpstreamLimiter;
  private readonly retries: RetryPolicy;
  private probe: { at: number; result: Promise<ProbeResult> } | undefined;

  constructor(settings: RecallConfig['upstream'], private readonly observer?: UpstreamObserver) {
    const base = new URL(settings.url);
    this.settings = settings;
    this.limiter = new UpstreamLimiter(settings, observer);
    this.retries = new RetryPolicy(settings);
    this.basePath = base.pathname.replace(/\/+$/, '');
    this.pool = new Pool(base.origin, {
      connections: settings.connections,
      connect: { timeout: settings.connectTimeoutMs },
      headersTimeout: settings.headersTimeoutMs,
      bodyTimeout: settings.bodyTimeoutMs,
      keepAliveTimeout: settings.keepAliveTimeoutMs,
    });
  }

  /**
   * Sends one call: waits for a slot in the upstream queue, retries connect failures and 429/502/503/504 answers as
   * the retry policy allows, and resolves with the answer for the client, whose slot is held until its body has
   * ended, failed or been abandoned. A body that is a stream (an upload passed through) cannot be sent twice.
   */
  async send(request: UpstreamRequest): Promise<UpstreamResponse> {
    // Not undici's retry interceptor: it retries inside one dispatch, so a call would hold its slot through every backoff,
    // and its policy (socket errors retried after a POST was sent, long Retry-After capped not refused) is not ours.
    const priority = request.priority ?? 'normal';
    const replayable = request.body === undefined || Buffer.isBuffer(request.body);
    for (let retried = 0; ; retried++) {
      const waitFrom = performance.now();
      const slot = await this.limiter.acquire(priority, request.signal);
      if (request.timing !== undefined) request.timing.queueMs += performance.now() - waitFrom;
      let response: Dispatcher.ResponseData;
      try {
        response = await this.pool.request({
          method: request.method as 'POST',
          path: this.basePath + request.path,
          headers: request.headers,
          body: request.body ?? null,
          signal: request.signal,
        });
      } catch (err) {
        slot.release();
        this.reportFailure(err, 'unreachable');
        const retry = replayable ? this.retries.afterFailure(err, retried) : undefined;
        if (retry === undefined) throw asUpstreamError(err, this.settings);
        await this.backOff(retry, request.signal);
        continue;
      }
      if (response.statusCode >= 400) this.observer?.upstreamError(response.statusCode);
      const retry = replayable ? this.retries.afterAnswer(response.statusCode, response.headers, retried) : undefined;
      if (retry !== undefined) {
        // The failed answer is read to its end (undici drops the connection instead past 128 KiB) and not relayed.
        await response.body.dump().catch(() => undefined);
        slot.release();
        await this.backOff(retry, request.signal);
        continue;
      }
      // undici's body is autoDestroy: 'close' follows its end, its failure and its abandonment alike.
      if (response.body.closed) slot.release();
      else {
        response.body.once('close', () => slot.release());
        response.body.once('error', (err) => this.reportFailure(err, 'broken_response'));
      }
      return { status: response.statusCode, headers: response.headers as IncomingHttpHeaders, body: response.body };
    }
  }

  /** Counts a failed attempt by kind; a call its client abandoned is no upstream failure. */
  private reportFailure(err: unknown, otherwise: 'unreachable' | 'broken_response'): void {
    if (this.observer === undefined) return;
    const failure = asUpstreamError(err, this.settings);
    if (failure.kind === 'clientClosedRequest') return;
    this.observer.upstreamError(failure.kind === 'upstreamTimeout' ? 'timeout' : otherwise);
  }

  /** Counts the retry and sleeps through its backoff without a slot; a client that leaves meanwhile ends the call. */
  private async backOff(retry: RetryDecision, signal: CallSignal | undefined): Promise<void> {
    this.observer?.upstreamRetry(retry.reason);
    if (!(await delay(retry.delayMs, signal))) throw clientClosedRequest();
  }

  /**
   * Is the upstream answering HTTP at all? Any status below 500 counts; the result is reused for probeTtlMs. The probe
   * skips the queue and the retries: readiness must not wait behind the traffic it reports on.
   */
  reachable(now = Date.now()): Promise<ProbeResult> {
    if (this.probe && now - this.probe.at < this.settings.probeTtlMs) return this.probe.result;
    const result = this.runProbe();
    this.probe = { at: now, result };
    return result;
  }

  private async runProbe(): Promise<ProbeResult> {
    const started = performance.now();
    const checkedAt = new Date().toISOString();
    const headers: HeaderMap = this.settings.apiKey === undefined ? {} : { authorization: `Bearer ${this.settings.apiKey}` };
    try {
      const response = await this.pool.request({
        method: 'GET', path: `${this.basePath}/models`, headers,
        headersTimeout: Math.min(this.settings.headersTimeoutMs, 5_000),
        signal: AbortSignal.timeout(Math.min(this.settings.connectTimeoutMs + 5_000, 15_000)),
      });
      await response.body.dump();
      const ok = response.statusCode < 500;
      return { ok, detail: `GET /models answered ${response.statusCode}`, latencyMs: performance.now() - started, checkedAt };
    } catch (err) {
      return { ok: false, detail: asUpstreamError(err, this.settings).message, latencyMs: performance.now() - started, checkedAt };
    }
  }

  close(): Promise<void> {
    return this.pool.close();
  }

  destroy(): Promise<void> {
    return this.pool.destroy();
  }
}

/** Does the upstream answer with server-sent events? */
export function isEventStream(response: UpstreamResponse): boolean {
  const type = response.headers['content-type'];
  return typeof type === 'string' && type.startsWith('text/event-stream');
}

/** Reads an answer whole; a body that breaks or stalls becomes a 502 or 504. */
export async function readWhole(response: UpstreamResponse, upstreamSettings: RecallConfig['upstream']): Promise<Buffer> {
  try {
    return Buffer.from(await response.body.arrayBuffer());
  } catch (err) {
    const failure = asUpstreamError(err, upstreamSettings);
    if (failure.kind === 'upstreamUnreachable') {
      throw new RecallError('upstreamBrokenResponse', `The upstream API closed the connection in the middle of its answer (status ${response.status}). Try again.`, null, { cause: err });
    }
    throw failure;
  }
}

const TIMEOUTS: Record<string, { setting: string; what: string }> = {
  UND_ERR_CONNECT_TIMEOUT: { setting: 'upstream.connect_timeout_ms', what: 'did not accept a connection' },
  UND_ERR_HEADERS_TIMEOUT: { setting: 'upstream.headers_timeout_ms', what: 'did not start answering' },
  UND_ERR_BODY_TIMEOUT: { setting: 'upstream.body_timeout_ms', what: 'stopped sending its answer' },
};

/** Transport failures become 502 (unreachable, broken) or 504 (timed out); Recall's own errors pass as they are. */
export function asUpstreamError(err: unknown, settings: RecallConfig['upstream']): RecallError {
  if (err instanceof RecallError) return err;
  const failure = err as { code?: string; message?: string; name?: string; cause?: unknown };
  if (failure.code === 'UND_ERR_ABORTED' || failure.name === 'AbortError') return clientClosedRequest(err);
  const timeout = failure.code === undefined ? undefined : TIMEOUTS[failure.code];
  const origin = new URL(settings.url).host;
  if (timeout) {
    const ms = { 'upstream.connect_timeout_ms': settings.connectTimeoutMs, 'upstream.headers_timeout_ms': settings.headersTimeoutMs,
      'upstream.body_timeout_ms': settings.bodyTimeoutMs }[timeout.setting];
    return new RecallError('upstreamTimeout', `The upstream API at ${origin} ${timeout.what} within ${ms} ms (${timeout.setting}). Try again, or raise the timeout.`, null, { cause: err });
  }
  const cause = describeCause(failure);
  return new RecallError('upstreamUnreachable', `Recall could not reach the upstream API at ${origin}: ${cause}. Check upstream.url (RECALL_UPSTREAM_URL) and that the upstream is up.`, null, { cause: err });
}

function describeCause(failure: { code?: string; message?: string; cause?: unknown }): string {
  const inner = failure.cause as { code?: string; message?: string } | undefined;
  const code = inner?.code ?? failure.code;
  const message = inner?.message ?? failure.message ?? 'unknown error';
  return code && !message.includes(code) ? `${code} ${message}` : message;
}
