// The pipeline's "rate limit" box, as a hook on the routes that work on a client's behalf (/v1/*, /recall/compact,
// /recall/tools/batch): checks a proxy-issued key (auth.mode: proxy_keys) and strips it, so that upstream calls send
// Recall's own key; settles whose limits apply, and counts the request against its requests-per-minute. Installed
// only when keys or limits are configured: otherwise these routes carry no hook at all.
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { clientCredential, type TenantResolver } from '../cache/tenant.js';
import type { RecallConfig } from '../config/schema.js';
import { invalidApiKey } from '../openai/errors.js';
import type { ClientKeys } from './client-keys.js';
import { keepLimitHeaders } from './ratelimit-headers.js';
import type { RequestLimiter } from './request-limit.js';

/** Routes admission covers, by their registered pattern. */
function isAdmittedRoute(url: string): boolean {
  return url.startsWith('/v1/') || url === '/recall/compact' || url === '/recall/tools/batch';
}

export interface AdmissionDeps {
  tenants: TenantResolver;
  keys: ClientKeys;
  auth: RecallConfig['auth'];
  /** Undefined when no client has a requests-per-minute limit. */
  requests: RequestLimiter | undefined;
}

/** Does this config need admission at all? */
export function admissionNeeded(keys: ClientKeys, auth: RecallConfig['auth']): boolean {
  return auth.mode === 'proxy_keys' || keys.limited.requestsPerMinute || keys.limited.tokensPerMinute;
}

/** Adds the admission hook to the covered routes registered after this call. */
export function registerAdmission(app: FastifyInstance, deps: AdmissionDeps): void {
  const proxyKeys = deps.auth.mode === 'proxy_keys';
  const admit = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => {
    const presented = clientCredential(request.headers)?.key;
    const key = deps.keys.find(presented);
    if (proxyKeys) {
      if (key === undefined) throw invalidApiKey(presented !== undefined);
      request.recall.proxyKey = key.name;
      // From here on the request carries no key: every upstream call (the embedder's and compaction's too) sends
      // Recall's upstream.api_key in its place, as for any request without one (the config requires it in this mode).
      delete request.headers.authorization;
      delete request.headers['api-key'];
    }
    request.recall.client = { identity: deps.tenants.identityOf(request), limits: key?.limits ?? deps.keys.defaults };
    if (deps.requests !== undefined && request.recall.client.limits.requestsPerMinute > 0) await deps.requests(request, reply);
  };
  const keepHeaders = async (request: FastifyRequest, reply: FastifyReply): Promise<void> => keepLimitHeaders(request, reply);
  app.addHook('onRoute', (route) => {
    if (!isAdmittedRoute(route.url)) return;
    // preValidation: after the upload is read (a 401 or 429 sent before makes clients see a reset instead), and
    // before the body is validated (a client without a valid key learns nothing about its request).
    route.preValidation = [...hooksOf(route.preValidation), admit];
    route.onSend = [...hooksOf(route.onSend), keepHeaders];
  });
}

function hooksOf<T>(hooks: T | T[] | undefined): T[] {
  return hooks === undefined ? [] : Array.isArray(hooks) ? hooks : [hooks];
}
