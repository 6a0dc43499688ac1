// Which headers cross the proxy in each direction: hop-by-hop headers stop here (RFC 9110 §7.6.1), Recall's
// own request controls stay here, and the client's credentials go upstream (or the configured key when none).
import type { IncomingHttpHeaders } from 'node:http';

export type HeaderMap = Record<string, string | string[]>;

const HOP_BY_HOP = new Set([
  'connection', 'keep-alive', 'proxy-authenticate', 'proxy-authorization', 'proxy-connection',
  'te', 'trailer', 'transfer-encoding', 'upgrade',
]);

/** Request headers never sent upstream besides hop-by-hop ones: undici sets host and length itself. */
const NOT_FORWARDED = new Set(['host', 'content-length', 'expect', 'http2-settings']);

const RECALL_PREFIX = 'x-recall-';

/** Header names listed in `Connection: a, b` are hop-by-hop for this message too. */
function connectionTokens(connection: string | string[] | undefined): Set<string> | undefined {
  if (connection === undefined || connection === 'keep-alive' || connection === 'close') return undefined;
  const text = Array.isArray(connection) ? connection.join(',') : connection;
  const tokens = text.split(',').map((t) => t.trim().toLowerCase()).filter((t) => t !== '' && t !== 'close' && t !== 'keep-alive');
  return tokens.length === 0 ? undefined : new Set(tokens);
}

export interface UpstreamHeaderOptions {
  /** Used as `Authorization: Bearer …` when the client sent neither `authorization` nor `api-key`. */
  fallbackApiKey: string | undefined;
  /** Keep the client's content-length: the body goes upstream as a stream of the client's exact bytes. */
  keepContentLength: boolean;
  /** Ask the upstream for an uncompressed body, because Recall reads it. */
  identityEncoding: boolean;
}

export function upstreamRequestHeaders(client: IncomingHttpHeaders, options: UpstreamHeaderOptions): HeaderMap {
  const extraHopByHop = connectionTokens(client.connection);
  const out: HeaderMap = {};
  for (const name in client) {
    const value = client[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || NOT_FORWARDED.has(name) || name.startsWith(RECALL_PREFIX)) continue;
    if (extraHopByHop?.has(name)) continue;
    out[name] = value;
  }
  if (options.keepContentLength && client['content-length'] !== undefined) out['content-length'] = client['content-length'];
  if (options.identityEncoding) out['accept-encoding'] = 'identity';
  if (out.authorization === undefined && out['api-key'] === undefined && options.fallbackApiKey !== undefined) {
    out.authorization = `Bearer ${options.fallbackApiKey}`;
  }
  return out;
}

/** Upstream response headers that reach the client: all but hop-by-hop ones and the length, which is re-framed. */
export function clientResponseHeaders(upstream: IncomingHttpHeaders): HeaderMap {
  const extraHopByHop = connectionTokens(upstream.connection);
  const out: HeaderMap = {};
  for (const name in upstream) {
    const value = upstream[name];
    if (value === undefined) continue;
    if (HOP_BY_HOP.has(name) || name === 'content-length' || extraHopByHop?.has(name)) continue;
    out[name] = value;
  }
  return out;
}
