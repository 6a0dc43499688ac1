// Fills the exact tier from a miss: a JSON answer is stored before it is sent; a stream is assembled as it passes
// and stored once its terminal event arrives, before that event reaches the client. Non-2xx answers, broken or
// aborted streams are never stored.
import type { FastifyReply } from 'fastify';
import { StreamAssembler, type CompletionRoute } from '../openai/assemble.js';
import type { AnswerCapture } from '../proxy/relay.js';
import { markStored } from './cache-status.js';
import type { ExactTier } from './exact-tier.js';

export class CacheFill implements AnswerCapture {
  private assembler: StreamAssembler | undefined;

  constructor(
    private readonly tier: ExactTier,
    private readonly key: string,
    private readonly ttlS: number,
    private readonly route: CompletionRoute,
    private readonly reply: FastifyReply,
  ) {}

  async json(body: Buffer): Promise<void> {
    if (!isCompletionObject(body)) return;
    if (await this.tier.save(this.key, body, this.ttlS)) markStored(this.reply);
  }

  events(chunk: Buffer): void {
    (this.assembler ??= new StreamAssembler(this.route)).push(chunk);
  }

  get complete(): boolean {
    return this.assembler?.done === true;
  }

  async storeStream(): Promise<void> {
    const completion = this.assembler?.result();
    if (completion === undefined) return;
    await this.tier.save(this.key, Buffer.from(JSON.stringify(completion)), this.ttlS);
  }
}

const CHOICES = Buffer.from('"choices"');
const OPEN_BRACE = 0x7b;

/**
 * A 2xx body can still be something other than a completion (a proxy's HTML page, an error object). A byte check,
 * not a parse: parsing every answer cost the miss path more than anything else Recall adds to it; a stored body
 * that still turns out unreadable is dropped when a hit cannot render it.
 */
function isCompletionObject(body: Buffer): boolean {
  let first = 0;
  while (first < body.length && body[first]! <= 0x20) first++;
  return body[first] === OPEN_BRACE && body.includes(CHOICES) && !body.subarray(0, 64).includes('"error"');
}
