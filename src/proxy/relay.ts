// Sends an upstream answer to the client: server-sent events chunk by chunk as whole events, JSON read whole
// (so a broken body becomes a clean 502/504), anything else piped as it comes. A client that leaves aborts it.
import { EventEmitter } from 'node:events';
import type { ServerResponse } from 'node:http';
import { Readable } from 'node:stream';
import type { FastifyReply, FastifyRequest } from 'fastify';
import type { RecallConfig } from '../config/schema.js';
import { SseEventFramer, sseErrorEvent } from '../openai/sse.js';
import { StreamAssembler, type CompletionRoute } from '../openai/assemble.js';
import { brokenStream } from '../openai/errors.js';
import { asUpstreamError, readWhole, type UpstreamResponse } from '../upstream/client.js';
import { clientResponseHeaders } from '../upstream/headers.js';
import { markFirstEvent } from './request-context.js';

/**
 * Fires 'abort' when the client goes away before its answer is complete; passed to undici as the upstream call's
 * signal. An EventEmitter rather than an AbortController, which cost 3 % of the forwarding path's CPU in profiles.
 */
export class ClientDeparture extends EventEmitter {
  aborted = false;

  constructor(response: ServerResponse) {
    super();
    response.once('close', () => {
      if (response.writableFinished) return;
      this.aborted = true;
      this.emit('abort');
    });
  }
}

export interface RelayOptions {
  request: FastifyRequest;
  reply: FastifyReply;
  response: UpstreamResponse;
  /** performance.now() when the upstream call was sent; the upstream time is measured to its last byte. */
  sentAt: number;
  signal: ClientDeparture;
  upstreamSettings: RecallConfig['upstream'];
  /** Set for chat completions and completions: their streams are checked as they pass (see StreamAssembler.brokenBy). */
  completionRoute?: CompletionRoute | undefined;
}

/**
 * Relays an event stream as it arrives; an upstream failure mid-stream ends it with an OpenAI error event, and so does
 * a completion stream that turns out malformed (data that is not JSON is not relayed; a missing [DONE] is reported).
 */
export function relayEventStream(options: RelayOptions): FastifyReply {
  const { request, reply, response, sentAt, signal, upstreamSettings, completionRoute } = options;
  reply.code(response.status).headers(clientResponseHeaders(response.headers));
  return reply.send(Readable.from(relayEvents(), { objectMode: false }));

  async function* relayEvents(): AsyncGenerator<Buffer | string> {
    const framer = new SseEventFramer();
    const check = completionRoute === undefined ? undefined : new StreamAssembler(completionRoute);
    const brokenEnding = (what: string): string => {
      const failure = brokenStream(what);
      request.log.warn({ err: failure }, 'upstream stream failed');
      return sseErrorEvent(failure.toBody());
    };
    try {
      for await (const chunk of response.body) {
        const events = framer.push(chunk as Buffer);
        if (events === undefined) continue;
        if (check !== undefined && !check.done) {
          check.push(events);
          const broken = check.brokenBy(false);
          if (broken !== undefined) {
            yield brokenEnding(broken);
            return;
          }
        }
        markFirstEvent(request.recall);
        yield events;
      }
      const cut = check?.brokenBy(true);
      if (cut !== undefined) {
        yield brokenEnding(cut);
        return;
      }
      const rest = framer.flush();
      if (rest !== undefined) yield rest;
    } catch (err) {
      framer.discard();
      if (signal.aborted) return;
      const failure = asUpstreamError(err, upstreamSettings);
      request.log.warn({ err: failure }, 'upstream stream failed');
      yield sseErrorEvent(failure.toBody());
    } finally {
      request.recall.upstreamMs = performance.now() - sentAt;
    }
  }
}

/**
 * Reads a (JSON) answer whole, then sends it: a body that breaks or stalls becomes a 502 or 504. The request's token
 * spend, if any, is corrected to the body (a success) or given back (any other status).
 */
export async function relayBuffered(options: RelayOptions): Promise<FastifyReply> {
  const { request, reply, response, sentAt, upstreamSettings } = options;
  const body = await readWhole(response, upstreamSettings).finally(() => {
    request.recall.upstreamMs = performance.now() - sentAt;
  });
  request.recall.spend?.settle(response.status >= 200 && response.status < 300 ? body : undefined);
  return reply.code(response.status).headers(clientResponseHeaders(response.headers)).send(body);
}

/** Pipes an answer of any type through as it arrives (files, audio, listings). */
export function relayPiped({ request, reply, response, sentAt }: RelayOptions): FastifyReply {
  response.body.once('close', () => {
    request.recall.upstreamMs = performance.now() - sentAt;
  });
  return reply.code(response.status).headers(clientResponseHeaders(response.headers)).send(response.body);
}
