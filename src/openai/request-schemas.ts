// JSON schemas of the OpenAI requests Recall reads: what must hold for Recall to key, cache and forward a request.
// They check shapes and types only where Recall or OpenAI rely on them, allow null wherever OpenAI does, and let
// unknown fields through (OpenAI adds fields; the key table keeps unknown ones). The upstream judges the rest.

/** Roles a chat message may have, as OpenAI accepts them (`function` is legacy). */
const MESSAGE_ROLES = ['system', 'developer', 'user', 'assistant', 'tool', 'function'] as const;

export interface RequestLimits {
  maxMessages: number;
}

const nullable = (type: string | string[]) => ({ type: [...(Array.isArray(type) ? type : [type]), 'null'] });

const model = { type: 'string', minLength: 1 } as const;

/** One chat message: its role, and content of a type OpenAI accepts; the parts' own shapes are the upstream's to judge. */
const chatMessage = {
  type: 'object',
  required: ['role'],
  properties: {
    role: { type: 'string', enum: [...MESSAGE_ROLES] },
    content: nullable(['string', 'array']),
    name: nullable('string'),
    tool_call_id: nullable('string'),
    tool_calls: nullable('array'),
  },
} as const;

export function chatMessagesSchema(limits: RequestLimits) {
  return { type: 'array', minItems: 1, maxItems: limits.maxMessages, items: chatMessage } as const;
}

/** Sampling and output fields shared by chat completions and completions; Recall reads `stream`, `n` and `temperature`. */
const samplingFields = {
  stream: nullable('boolean'),
  stream_options: nullable('object'),
  n: { type: ['integer', 'null'], minimum: 1 },
  temperature: nullable('number'),
  top_p: nullable('number'),
  max_tokens: nullable('integer'),
  seed: nullable('integer'),
  stop: nullable(['string', 'array']),
  presence_penalty: nullable('number'),
  frequency_penalty: nullable('number'),
  logit_bias: nullable('object'),
  user: nullable('string'),
} as const;

export function chatCompletionSchema(limits: RequestLimits) {
  return {
    type: 'object',
    required: ['model', 'messages'],
    properties: {
      model,
      messages: chatMessagesSchema(limits),
      ...samplingFields,
      max_completion_tokens: nullable('integer'),
      tools: nullable('array'),
      tool_choice: nullable(['string', 'object']),
      response_format: nullable('object'),
      metadata: nullable('object'),
    },
  } as const;
}

export function completionSchema() {
  return {
    type: 'object',
    required: ['model'],
    properties: { model, prompt: nullable(['string', 'array']), ...samplingFields, echo: nullable('boolean'), suffix: nullable('string') },
  } as const;
}

export function embeddingsSchema() {
  return {
    type: 'object',
    required: ['model', 'input'],
    properties: {
      model,
      input: { type: ['string', 'array'] },
      encoding_format: nullable('string'),
      dimensions: { type: ['integer', 'null'], minimum: 1 },
      user: nullable('string'),
    },
  } as const;
}
