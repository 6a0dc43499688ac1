// The one catalog of errors Recall itself answers with, each mapped once to OpenAI's error shape and status.
// Upstream errors are not in here: they pass through to the client unchanged.

export interface OpenAIErrorBody {
  error: { message: string; type: string; param: string | null; code: string | null };
}

interface ErrorSpec {
  status: number;
  /** OpenAI's types; a rate-limit answer says which limit it hit: `requests` or `tokens`. */
  type: 'invalid_request_error' | 'authentication_error' | 'api_error' | 'server_error' | 'requests' | 'tokens';
  code: string;
}

export const ERROR_CATALOG = {
  invalidJson: { status: 400, type: 'invalid_request_error', code: 'invalid_json' },
  invalidBody: { status: 400, type: 'invalid_request_error', code: 'invalid_body' },
  invalidParameter: { status: 400, type: 'invalid_request_error', code: 'invalid_parameter' },
  invalidHeader: { status: 400, type: 'invalid_request_error', code: 'invalid_header' },
  unknownTool: { status: 400, type: 'invalid_request_error', code: 'unknown_tool' },
  unknownDependency: { status: 400, type: 'invalid_request_error', code: 'unknown_dependency' },
  dependencyCycle: { status: 400, type: 'invalid_request_error', code: 'dependency_cycle' },
  invalidToolArguments: { status: 400, type: 'invalid_request_error', code: 'invalid_tool_arguments' },
  duplicateCallId: { status: 400, type: 'invalid_request_error', code: 'duplicate_call_id' },
  unknownRoute: { status: 404, type: 'invalid_request_error', code: 'unknown_url' },
  invalidAdminToken: { status: 401, type: 'authentication_error', code: 'invalid_admin_token' },
  // As OpenAI answers an unknown key: 401 with type invalid_request_error.
  invalidApiKey: { status: 401, type: 'invalid_request_error', code: 'invalid_api_key' },
  requestRateLimited: { status: 429, type: 'requests', code: 'rate_limit_exceeded' },
  tokenBudgetExceeded: { status: 429, type: 'tokens', code: 'rate_limit_exceeded' },
  compactionBudgetUnreachable: { status: 400, type: 'invalid_request_error', code: 'compaction_budget_unreachable' },
  entryNotFound: { status: 404, type: 'invalid_request_error', code: 'entry_not_found' },
  bodyTooLarge: { status: 413, type: 'invalid_request_error', code: 'request_too_large' },
  headersTooLarge: { status: 431, type: 'invalid_request_error', code: 'request_header_fields_too_large' },
  requestTimeout: { status: 408, type: 'invalid_request_error', code: 'request_timeout' },
  malformedRequest: { status: 400, type: 'invalid_request_error', code: 'malformed_request' },
  // Never reaches anyone (the client is gone); it keeps an abandoned request out of the error log.
  clientClosedRequest: { status: 499, type: 'invalid_request_error', code: 'client_closed_request' },
  shuttingDown: { status: 503, type: 'api_error', code: 'shutting_down' },
  upstreamQueueFull: { status: 503, type: 'api_error', code: 'upstream_queue_full' },
  upstreamQueueTimeout: { status: 503, type: 'api_error', code: 'upstream_queue_timeout' },
  compactionSummaryFailed: { status: 502, type: 'api_error', code: 'compaction_summary_failed' },
  upstreamUnreachable: { status: 502, type: 'api_error', code: 'upstream_unreachable' },
  upstreamBrokenResponse: { status: 502, type: 'api_error', code: 'upstream_broken_response' },
  upstreamTimeout: { status: 504, type: 'api_error', code: 'upstream_timeout' },
  internal: { status: 500, type: 'server_error', code: 'internal_error' },
} as const satisfies Record<string, ErrorSpec>;

export type ErrorKind = keyof typeof ERROR_CATALOG;

/** An error Recall answers with; thrown anywhere, rendered once by the app's error handler. */
export class RecallError extends Error {
  override readonly name = 'RecallError';
  readonly status: number;
  readonly type: string;
  readonly code: string;
  /** Seconds a client should wait before trying again; the error handler sends it as `Retry-After`. */
  readonly retryAfterS: number | undefined;

  constructor(
    readonly kind: ErrorKind,
    message: string,
    readonly param: string | null = null,
    options?: { cause?: unknown; retryAfterS?: number },
  ) {
    super(message, options);
    const spec: ErrorSpec = ERROR_CATALOG[kind];
    this.status = spec.status;
    this.type = spec.type;
    this.code = spec.code;
    this.retryAfterS = options?.retryAfterS;
  }

  toBody(): OpenAIErrorBody {
    return { error: { message: this.message, type: this.type, param: this.param, code: this.code } };
  }
}

/** Fastify's own error codes that a client's mistake produces, mapped to the catalog. */
export function fromFrameworkError(err: { code?: string; message: string; statusCode?: number }): RecallError {
  switch (err.code) {
    case 'FST_ERR_CTP_BODY_TOO_LARGE':
      return bodyTooLarge();
    case 'FST_ERR_CTP_INVALID_JSON_BODY':
    case 'FST_ERR_CTP_EMPTY_JSON_BODY':
      return invalidJson(err.message);
    // Route schemas answer with their own errors (request-validation.ts); this only covers a schema-less failure.
    case 'FST_ERR_VALIDATION':
      return new RecallError('invalidParameter', `Invalid request: ${err.message}`);
  }
  if (err.statusCode === 404) return new RecallError('unknownRoute', err.message);
  // The router cannot read the path (a bad %-escape) or a path parameter is too long: no such route.
  if (err.code === 'FST_ERR_BAD_URL' || err.code === 'FST_ERR_MAX_PARAM_LENGTH') return new RecallError('unknownRoute', `Invalid URL (${err.message})`);
  if (err.statusCode !== undefined && err.statusCode >= 400 && err.statusCode < 500) {
    return new RecallError('invalidBody', err.message);
  }
  return new RecallError('internal', 'Recall failed to handle this request; the error has been logged.', null, { cause: err });
}

/** A client's value as an error message shows it: JSON, cut short, so that a huge value is not echoed back whole. */
export function quoted(value: unknown): string {
  const text = JSON.stringify(value) ?? String(value);
  return text.length > 64 ? `${text.slice(0, 61)}...` : text;
}

export function invalidJson(detail: string): RecallError {
  return new RecallError(
    'invalidJson',
    `We could not parse the JSON body of your request (${detail}). The API expects a JSON object; check that the body is valid JSON.`,
  );
}

export function bodyTooLarge(limitBytes?: number): RecallError {
  const limit = limitBytes === undefined ? '' : ` of ${limitBytes} bytes`;
  return new RecallError('bodyTooLarge', `Request body exceeds the limit${limit} (server.body_limit_bytes). Send a smaller request.`);
}

export function clientClosedRequest(cause?: unknown): RecallError {
  return new RecallError('clientClosedRequest', 'The client closed the connection before the answer was complete.', null, { cause });
}

/** Compaction cannot fit the conversation into target_tokens without breaking it. */
export function budgetUnreachable(targetTokens: number, neededTokens: number, what: string): RecallError {
  return new RecallError('compactionBudgetUnreachable',
    `target_tokens ${targetTokens} cannot be met: ${what} already take ${neededTokens} tokens. Raise target_tokens or shorten those messages.`,
    'target_tokens');
}

/** The upstream did not produce a summary; the client's conversation is left as it was. */
export function summaryFailed(detail: string): RecallError {
  return new RecallError('compactionSummaryFailed',
    `The upstream could not summarise the conversation (${detail}); nothing was compacted. Retry, or use strategy truncation.`);
}

/** An upstream answer Recall cannot make a whole answer of: `what` the upstream did, e.g. "ended its stream before the final event". */
export function brokenStream(what: string): RecallError {
  return new RecallError('upstreamBrokenResponse', `The upstream API ${what}, so there is no complete answer to return. Try again.`);
}

/** Both queue errors ask the client to come back in a second: the queue drains as upstream calls finish. */
const QUEUE_RETRY_AFTER_S = 1;

export function upstreamQueueFull(queueMax: number): RecallError {
  return new RecallError('upstreamQueueFull',
    `Recall's queue for the upstream API is full (${queueMax} requests waiting, upstream.queue_max). Retry shortly.`,
    null, { retryAfterS: QUEUE_RETRY_AFTER_S });
}

export function upstreamQueueTimeout(timeoutMs: number): RecallError {
  return new RecallError('upstreamQueueTimeout',
    `The request waited ${timeoutMs} ms for a free upstream slot (upstream.queue_timeout_ms, upstream.max_concurrent) without getting one. Retry shortly.`,
    null, { retryAfterS: QUEUE_RETRY_AFTER_S });
}

/** `auth.mode: proxy_keys` and the request presented no key, or one not in auth.keys; the key is never echoed. */
export function invalidApiKey(presented: boolean): RecallError {
  return new RecallError('invalidApiKey', presented
    ? 'Incorrect API key provided. This Recall accepts only the keys it issued (auth.keys); ask its operator for one.'
    : "You didn't provide an API key. Send the key Recall issued you as `Authorization: Bearer <key>`.");
}

export function requestRateLimited(limit: number, retryAfterS: number): RecallError {
  return new RecallError('requestRateLimited',
    `Rate limit reached for requests: limit ${limit} per minute for this API key. Please try again in ${retryAfterS}s.`, null, { retryAfterS });
}

export function tokenBudgetExceeded(limit: number, used: number, requested: number, retryAfterS: number): RecallError {
  const message = requested > limit
    ? `Request too large: limit ${limit} tokens per minute for this API key, requested ${requested}. Send a smaller request or raise the key's tokens_per_minute.`
    : `Rate limit reached for tokens: limit ${limit} per minute for this API key, used ${used}, requested ${requested}. Please try again in ${retryAfterS}s.`;
  return new RecallError('tokenBudgetExceeded', message, null, { retryAfterS });
}

/** What the HTTP parser rejects before a request exists (a head too large, garbage instead of HTTP, a timeout). */
export function fromClientError(err: { code?: string }, maxHeaderBytes: number): RecallError {
  switch (err.code) {
    case 'HPE_HEADER_OVERFLOW':
      return new RecallError('headersTooLarge', `The request line and headers exceed ${maxHeaderBytes} bytes (server.max_header_bytes). Send fewer or shorter headers.`);
    case 'ERR_HTTP_REQUEST_TIMEOUT':
      return new RecallError('requestTimeout', 'The request was not received completely in time.');
    default:
      return new RecallError('malformedRequest', 'The request is not valid HTTP/1.1.');
  }
}
