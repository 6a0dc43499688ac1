// Long agent conversations for the compaction tests: turns of question, tool call, tool result and answer.
import type OpenAI from 'openai';

/** `n` distinct words tagged `tag`, so that token counts grow with n and no two turns share text. */
export const words = (n: number, tag: string): string => Array.from({ length: n }, (_, i) => `${tag}${i}`).join(' ');

export function agentConversation(turns: number): OpenAI.Chat.ChatCompletionMessageParam[] {
  const messages: OpenAI.Chat.ChatCompletionMessageParam[] = [{ role: 'system', content: 'You are a travel agent.' }];
  for (let t = 0; t < turns; t++) {
    messages.push({ role: 'user', content: `Question ${t}: ${words(30, `q${t}_`)}` });
    messages.push({ role: 'assistant', content: null, tool_calls: [{ id: `call_${t}`, type: 'function', function: { name: 'search', arguments: `{"turn":${t}}` } }] });
    messages.push({ role: 'tool', tool_call_id: `call_${t}`, content: `Result ${t}: ${words(40, `r${t}_`)}` });
    messages.push({ role: 'assistant', content: `Answer ${t}: ${words(20, `a${t}_`)}` });
  }
  messages.push({ role: 'user', content: 'And the final question?' });
  return messages;
}
