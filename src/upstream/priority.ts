// X-Recall-Priority: how urgently a request wants its upstream call. Read once per request; the upstream queue
// orders waiting calls by it and the embeddings batcher lets `high` skip its gathering window.
import type { IncomingHttpHeaders } from 'node:http';
import { RecallError } from '../openai/errors.js';

export const PRIORITIES = ['high', 'normal', 'low'] as const;
export type Priority = (typeof PRIORITIES)[number];

/** The request's priority; `normal` when the header is absent; a 400 naming the header for any other value. */
export function readPriority(headers: IncomingHttpHeaders): Priority {
  const raw = headers['x-recall-priority'];
  if (raw === undefined) return 'normal';
  const value = (Array.isArray(raw) ? raw.join(',') : raw).trim().toLowerCase();
  if ((PRIORITIES as readonly string[]).includes(value)) return value as Priority;
  throw new RecallError('invalidHeader', `X-Recall-Priority must be one of ${PRIORITIES.join(', ')}, not '${value.slice(0, 32)}'.`, 'X-Recall-Priority');
}
