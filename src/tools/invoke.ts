// Calls one configured HTTP tool: arguments as a JSON body (query parameters for GET and DELETE), the answer's
// JSON (or text) as the result. A status of 400 or more is a failure carrying the start of the answer.
import { Agent, request } from 'undici';
import type { ToolSpec } from './registry.js';

const ERROR_BODY_CHARS = 500;

export class ToolInvoker {
  private readonly agent = new Agent({ connections: 64, keepAliveTimeout: 30_000 });

  async call(tool: ToolSpec, args: Readonly<Record<string, unknown>>, signal: AbortSignal): Promise<unknown> {
    const inQuery = tool.method === 'GET' || tool.method === 'DELETE';
    const url = new URL(tool.url);
    if (inQuery) {
      for (const [key, value] of Object.entries(args)) url.searchParams.set(key, typeof value === 'string' ? value : JSON.stringify(value));
    }
    const answer = await request(url, {
      method: tool.method,
      dispatcher: this.agent,
      signal,
      headers: inQuery ? { ...tool.headers } : { 'content-type': 'application/json', ...tool.headers },
      body: inQuery ? undefined : JSON.stringify(args),
    });
    const text = await answer.body.text();
    if (answer.statusCode >= 400) throw new Error(`${tool.name} answered HTTP ${answer.statusCode}: ${text.slice(0, ERROR_BODY_CHARS)}`);
    const type = String(answer.headers['content-type'] ?? '');
    if (!type.includes('json')) return text;
    try {
      return JSON.parse(text) as unknown;
    } catch {
      throw new Error(`${tool.name} answered invalid JSON (content-type ${type})`);
    }
  }

  close(): Promise<void> {
    return this.agent.close();
  }
}
