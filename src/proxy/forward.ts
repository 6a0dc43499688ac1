// The upstream stage: sends the client's request to the upstream and relays the answer back. Used by the pipeline
// for the cached routes and, unchanged, for every other /v1/* route.
import type { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RecallConfig } from '../config/schema.js';
import { isEventStream, readWhole, type UpstreamClient, type UpstreamRequest, type UpstreamResponse } from '../upstream/client.js';
import { clientResponseHeaders, upstreamRequestHeaders, type HeaderMap } from '../upstream/headers.js';
import { ClientDeparture, relayBuffered, relayEventStream, relayPiped } from './relay.js';
import type { CompletionRoute } from '../openai/assemble.js';

export interface ForwardOptions {
  /** The exact bytes for JSON routes; the live upload stream for pass-through routes; none for GET. */
  body: Buffer | Readable | undefined;
  /** JSON answers are read whole (Recall needs them, and a broken body becomes a clean error). */
  readJsonWhole: boolean;
  /** Chat completions and completions: a malformed event stream ends with a clean error event. */
  completionRoute?: CompletionRoute | undefined;
}

/** An upstream answer read whole, with the headers a client may see. */
export interface WholeAnswer {
  status: number;
  headers: HeaderMap;
  body: Buffer;
}

/** One upstream call whose answer Recall reads whole: `Forwarder.sendWhole`, or the embeddings batcher wrapping it. */
export type SendWhole = (call: UpstreamRequest) => Promise<WholeAnswer>;

export class Forwarder {
  constructor(
    private readonly upstream: UpstreamClient,
    private readonly settings: RecallConfig['upstream'],
  ) {}

  /** Sends a JSON body upstream on the client's behalf, as it is; the caller reads the answer. */
  call(request: FastifyRequest, body: Buffer, signal: UpstreamRequest['signal']): Promise<UpstreamResponse> {
    return this.upstream.send(this.jsonCall(request, body, signal));
  }

  /**
   * Sends a JSON body upstream on the client's behalf and reads the answer whole, for Recall to work with. `send` is
   * the path the call takes: straight upstream, or through the embeddings batcher (which may merge it with others).
   */
  async exchange(request: FastifyRequest, reply: FastifyReply, body: Buffer, send: SendWhole = this.sendWhole): Promise<WholeAnswer> {
    const sentAt = performance.now();
    try {
      return await send(this.jsonCall(request, body, new ClientDeparture(reply.raw)));
    } finally {
      request.recall.upstreamMs = performance.now() - sentAt;
    }
  }

  /** One upstream call, its answer read whole (a body that breaks or stalls becomes a 502 or 504). */
  readonly sendWhole: SendWhole = async (call) => {
    const response = await this.upstream.send(call);
    const body = await readWhole(response, this.settings);
    return { status: response.status, headers: clientResponseHeaders(response.headers), body };
  };

  private jsonCall(request: FastifyRequest, body: Buffer, signal: UpstreamRequest['signal']): UpstreamRequest {
    return {
      method: 'POST',
      path: request.url.slice('/v1'.length),
      headers: upstreamRequestHeaders(request.headers, { fallbackApiKey: this.settings.apiKey, keepContentLength: false, identityEncoding: true }),
      body,
      signal,
      priority: request.recall.priority,
      timing: request.recall,
    };
  }

  async forward(request: FastifyRequest, reply: FastifyReply, options: ForwardOptions): Promise<FastifyReply> {
    const signal = new ClientDeparture(reply.raw);
    const sentAt = performance.now();
    const response = await this.upstream.send({
      method: request.method,
      path: request.url.slice('/v1'.length),
      headers: upstreamRequestHeaders(request.headers, {
        fallbackApiKey: this.settings.apiKey,
        keepContentLength: options.body !== undefined && !Buffer.isBuffer(options.body),
        identityEncoding: options.readJsonWhole,
      }),
      body: options.body,
      signal,
      priority: request.recall.priority,
      timing: request.recall,
    });
    const relay = { request, reply, response, sentAt, signal, upstreamSettings: this.settings, completionRoute: options.completionRoute };
    if (isEventStream(response)) return relayEventStream(relay);
    return options.readJsonWhole ? relayBuffered(relay) : relayPiped(relay);
  }
}
