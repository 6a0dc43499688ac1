// Enforces server.body_limit_bytes on every route. An oversized upload is read to its end and dropped before the
// 413 is sent: answering first makes clients see a reset (EPIPE) instead of the error.
import { Transform, type Readable, type TransformCallback } from 'node:stream';
import type { FastifyInstance } from 'fastify';
import { bodyTooLarge } from '../openai/errors.js';

/** Past this many bytes an oversized upload is no longer drained; the connection is closed instead. */
const MAX_DRAIN_BYTES = 64 * 1024 * 1024;

export function registerBodyLimit(app: FastifyInstance, limitBytes: number): void {
  app.addHook('preParsing', (request, reply, payload, done) => {
    const declared = request.headers['content-length'];
    if (declared !== undefined) {
      if (Number(declared) <= limitBytes) return done(null, payload);
      if (Number(declared) - limitBytes > MAX_DRAIN_BYTES) reply.header('connection', 'close');
      return drainThen(payload, Number(declared) - limitBytes > MAX_DRAIN_BYTES, () => done(bodyTooLarge(limitBytes)));
    }
    done(null, payload.pipe(new LimitedBody(limitBytes, () => reply.header('connection', 'close'))));
  });
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
