// The `truncation` strategy: keeps system and developer messages, pinned messages, and the newest blocks that fit
// the budget, in their original order; older blocks are dropped.
import type { JsonObject } from '../openai/wire.js';
import { budgetUnreachable } from '../openai/errors.js';
import { blocksOf, textOf } from './conversation.js';
import type { TokenCounter } from './tokens.js';

export interface Truncated {
  messages: JsonObject[];
  tokens: number;
  dropped: number;
}

/**
 * `pinned` patterns keep every block with a message whose text matches, wherever it is. The newest block (the turn
 * being asked) is always needed: when it and the kept messages cannot fit, the budget cannot be met.
 */
export function truncate(messages: readonly JsonObject[], targetTokens: number, counter: TokenCounter, pinned: readonly RegExp[]): Truncated {
  const blocks = blocksOf(messages);
  const cost = messages.map((message) => counter.message(message));
  const blockCost = (b: { start: number; end: number }): number => { let s = 0; for (let i = b.start; i < b.end; i++) s += cost[i]!; return s; };
  const keep = new Array<boolean>(blocks.length).fill(false);
  let tokens = counter.conversation([]);
  blocks.forEach((block, i) => {
    const isPinned = pinned.length > 0 && messages.slice(block.start, block.end).some((m) => pinned.some((p) => p.test(textOf(m))));
    if (block.instructions || (isPinned && !block.orphan)) {
      keep[i] = true;
      tokens += blockCost(block);
    }
  });
  const newest = blocks.length - 1;
  if (tokens > targetTokens) {
    throw budgetUnreachable(targetTokens, tokens, 'the system, developer and pinned messages alone');
  }
  for (let i = newest; i >= 0; i--) {
    if (keep[i]) continue;
    const block = blocks[i]!;
    const needed = blockCost(block);
    if (tokens + needed > targetTokens) {
      if (i === newest) throw budgetUnreachable(targetTokens, tokens + needed, 'the newest message with the system, developer and pinned messages');
      break;
    }
    keep[i] = true;
    tokens += needed;
  }
  // A tool result with no call before it is never the first message after the instructions.
  for (let i = 0; i < blocks.length; i++) {
    if (blocks[i]!.instructions || !keep[i]) continue;
    if (!blocks[i]!.orphan) break;
    keep[i] = false;
    tokens -= blockCost(blocks[i]!);
  }
  const kept: JsonObject[] = [];
  blocks.forEach((block, i) => { if (keep[i]) kept.push(...messages.slice(block.start, block.end)); });
  return { messages: kept, tokens, dropped: messages.length - kept.length };
}
