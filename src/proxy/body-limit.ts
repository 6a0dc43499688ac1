// Enforces server.body_limit_bytes on every route. An oversized upload is read to its end and dropped before the
// 413 is sent: answering first makes clients see a reset (EPIPE) instead of the error.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { FastifyInstance, preParsingHookHandler } from 'fastify';
import { bodyTooLarge } from '../openai/errors.js';

/** Past this many bytes an oversized upload is no longer drained; the connection is closed instead. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

declare module 'fastify' {
  interface FastifyContextConfig {
    /** The route's body parser keeps server.body_limit_bytes itself (with `readBodyWithin`): no preParsing hook. */
    limitsOwnBody?: boolean;
  }
}

/**
 * Gives every route a preParsing hook that enforces the limit, except routes whose parser reads the body itself
 * within it (the cached OpenAI routes: every hook costs on the hit path).
 */
export function registerBodyLimit(app: FastifyInstance, limitBytes: number): void {
  const limit: preParsingHookHandler = (request, reply, payload, done) => {
    const declared = request.headers['content-length'];
    if (declared !== undefined) {
      if (Number(declared) <= limitBytes) return done(null, payload);
      if (Number(declared) - limitBytes > MAX_DRAIN_BYTES) reply.header('connection', 'close');
      return drainThen(payload, Number(declared) - limitBytes > MAX_DRAIN_BYTES, () => done(bodyTooLarge(limitBytes)));
    }
    done(null, payload.pipe(new LimitedBody(limitBytes, () => reply.header('connection', 'close'))));
  };
  app.addHook('onRoute', (route) => {
    if (route.config?.limitsOwnBody === true) return;
    const existing = route.preParsing === undefined ? [] : Array.isArray(route.preParsing) ? route.preParsing : [route.preParsing];
    route.preParsing = [limit, ...existing];
  });
}

/**
 * Reads a whole body within the limit, for a content-type parser: the same rules as the hook (an oversized upload is
 * drained before the 413, past MAX_DRAIN_BYTES the connection is closed instead). Node's HTTP parser already holds
 * the body to its Content-Length.
 */
export function readBodyWithin(payload: Readable, declaredLength: string | undefined, limitBytes: number, done: (err: Error | null, body?: Buffer) => void): void {
  const declared = declaredLength === undefined ? undefined : Number(declaredLength);
  if (declared !== undefined && declared > limitBytes) return drainThen(payload, declared - limitBytes > MAX_DRAIN_BYTES, () => done(bodyTooLarge(limitBytes)));
  const chunks: Buffer[] = [];
  let received = 0;
  const onData = (chunk: Buffer): void => {
    received += chunk.length;
    if (received <= limitBytes) chunks.push(chunk);
    else if (received - limitBytes > MAX_DRAIN_BYTES) finish(bodyTooLarge(limitBytes));
  };
  const onEnd = (): void => {
    if (received > limitBytes) return finish(bodyTooLarge(limitBytes));
    finish(null, Buffer.concat(chunks, received));
  };
  const onError = (err: Error): void => finish(err);
  function finish(err: Error | null, body?: Buffer): void {
    payload.off('data', onData).off('end', onEnd).off('error', onError);
    done(err, body);
  }
  payload.on('data', onData).on('end', onEnd).on('error', onError);
}

function drainThen(payload: Readable, skipDrain: boolean, then: () => void): void {
  if (skipDrain) return then();
  payload.on('error', then);
  payload.on('end', then);
  payload.resume();
}

/** Passes a body of unknown length through until it passes the limit, then swallows the rest and fails at its end. */
class LimitedBody extends Transform {
  private received = 0;

  constructor(private readonly limitBytes: number, private readonly onGiveUp: () => void) {
    super();
  }

  override _transform(chunk: Buffer, _encoding: BufferEncoding, callback: TransformCallback): void {
    this.received += chunk.length;
    if (this.received <= this.limitBytes) return callback(null, chunk);
    if (this.received - this.limitBytes > MAX_DRAIN_BYTES) {
      this.onGiveUp();
      return callback(bodyTooLarge(this.limitBytes));
    }
    callback();
  }

  override _flush(callback: TransformCallback): void {
    callback(this.received > this.limitBytes ? bodyTooLarge(this.limitBytes) : null);
  }
}
