// A chat conversation cut into blocks that compaction keeps or drops whole: an assistant message that calls tools
// travels with its tool results, so no strategy can separate them or leave a tool result without its call.
import { isRecord, type JsonObject } from '../openai/wire.js';

export interface Block {
  /** Index of the block's first message. */
  start: number;
  /** Index after its last message. */
  end: number;
  /** system and developer messages: instructions every strategy keeps in place. */
  instructions: boolean;
  /** Tool results with no assistant call before them: invalid on their own, never kept at the head. */
  orphan: boolean;
}

export function isInstruction(message: JsonObject): boolean {
  return message.role === 'system' || message.role === 'developer';
}

function callsTools(message: JsonObject): boolean {
  return message.role === 'assistant' && Array.isArray(message.tool_calls) && message.tool_calls.length > 0;
}

export function blocksOf(messages: readonly JsonObject[]): Block[] {
  const blocks: Block[] = [];
  let i = 0;
  while (i < messages.length) {
    const message = messages[i]!;
    const start = i++;
    if (callsTools(message)) {
      while (i < messages.length && messages[i]!.role === 'tool') i++;
      blocks.push({ start, end: i, instructions: false, orphan: false });
    } else if (message.role === 'tool') {
      while (i < messages.length && messages[i]!.role === 'tool') i++;
      blocks.push({ start, end: i, instructions: false, orphan: true });
    } else {
      blocks.push({ start, end: i, instructions: isInstruction(message), orphan: false });
    }
  }
  return blocks;
}

/** The text of a message for matching pinned patterns and for a summary transcript. */
export function textOf(message: JsonObject): string {
  const content = message.content;
  if (typeof content === 'string') return content;
  if (!Array.isArray(content)) return '';
  return content.map((part) => (isRecord(part) && typeof part.text === 'string' ? part.text : '')).join('\n');
}
