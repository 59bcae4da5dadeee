// A small client of the CoreAPI for the CLI's `app` and `ps` commands.

import { request } from 'undici';
import type { Problem } from '../shared/errors.js';

export class ApiError extends Error {
  constructor(readonly status: number, readonly problem: Partial<Problem> & Record<string, unknown>) {
    super(String(problem.detail ?? problem.title ?? `HTTP ${status}`));
  }
}

export class ApiClient {
  constructor(private readonly baseUrl: string, private readonly token: string | undefined) {}

  async call<T>(method: 'GET' | 'POST' | 'PATCH' | 'DELETE', path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { accept: 'application/json' };
    if (body !== undefined) headers['content-type'] = 'application/json';
    // Reads need a token too (the read token or the admin one).
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await request(`${this.baseUrl}${path}`, { method, headers, body: body === undefined ? null : JSON.stringify(body), headersTimeout: 30_000 });
    } catch (err) {
      throw new ApiError(0, { title: 'CoreAPI unreachable', detail: `cannot reach the CoreAPI at ${this.baseUrl} (${(err as Error).message}); is \`fastcontainer up\` running? (FC_API_URL sets where it is)` });
    }
    const text = await res.body.text();
    const parsed = text === '' ? {} : (JSON.parse(text) as unknown);
    if (res.statusCode >= 400) throw new ApiError(res.statusCode, parsed as Partial<Problem>);
    return parsed as T;
  }

  /** A GET whose answer is streamed (`logs --follow`): its body, once the status says it is one. */
  async stream(path: string, signal?: AbortSignal): Promise<AsyncIterable<Buffer>> {
    const headers: Record<string, string> = { accept: 'application/x-ndjson' };
    if (this.token !== undefined) headers.authorization = `Bearer ${this.token}`;
    let res;
    try {
      res = await request(`${this.baseUrl}${path}`, { method: 'GET', headers, headersTimeout: 30_000, bodyTimeout: 0, ...(signal === undefined ? {} : { signal }) });
    } catch (err) {
      throw new ApiError(0, { title: 'CoreAPI unreachable', detail: `cannot reach the CoreAPI at ${this.baseUrl} (${(err as Error).message})` });
    }
    if (res.statusCode >= 400) {
      const text = await res.body.text();
      throw new ApiError(res.statusCode, (text === '' ? {} : JSON.parse(text)) as Partial<Problem>);
    }
    return res.body as AsyncIterable<Buffer>;
  }
}
