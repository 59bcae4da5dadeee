// A Server-Sent Events reader for tests: opens the stream, parses events and comments as they
// come, and waits for one with a deadline.

import { Agent, request } from 'undici';
import { eventually } from './wait.js';

export interface SseEvent {
  event: string;
  data: any;
}

export interface SseStream {
  status: number;
  headers: Record<string, unknown>;
  /** The body of a refusal (problem+json). */
  problem: any;
  events: SseEvent[];
  comments: string[];
  ended: boolean;
  /** The first event (from `from` on) that passes `match`, waiting up to the deadline. */
  next(match: (e: SseEvent) => boolean, what: string, from?: number): Promise<SseEvent>;
  close(): void;
}

export async function openSse(url: string, headers: Record<string, string> = {}): Promise<SseStream> {
  // Its own connection: a stream closed here leaves nothing in a shared pool to hold a server's close().
  const agent = new Agent({ connections: 1 });
  const res = await request(url, { headers: { accept: 'text/event-stream', ...headers }, dispatcher: agent });
  const s: SseStream = {
    status: res.statusCode,
    headers: res.headers,
    problem: undefined,
    events: [],
    comments: [],
    ended: false,
    next: (match, what, from = 0) => eventually(() => s.events.slice(from).find(match), { what, timeout: 15_000 }),
    close: () => {
      res.body.destroy();
      void agent.destroy();
    },
  };
  if (res.statusCode !== 200) {
    const text = await res.body.text();
    s.problem = text === '' ? undefined : JSON.parse(text);
    s.ended = true;
    await agent.close();
    return s;
  }
  let buf = '';
  res.body.setEncoding('utf8');
  res.body.on('data', (chunk: string) => {
    buf += chunk;
    for (let i = buf.indexOf('\n\n'); i >= 0; i = buf.indexOf('\n\n')) {
      const block = buf.slice(0, i);
      buf = buf.slice(i + 2);
      let event = 'message';
      const data: string[] = [];
      for (const line of block.split('\n')) {
        if (line.startsWith(':')) s.comments.push(line.slice(1).trim());
        else if (line.startsWith('event: ')) event = line.slice(7);
        else if (line.startsWith('data: ')) data.push(line.slice(6));
      }
      if (data.length > 0) s.events.push({ event, data: JSON.parse(data.join('\n')) });
    }
  });
  const end = () => {
    s.ended = true;
  };
  res.body.on('end', end);
  res.body.on('close', end);
  res.body.on('error', end);
  return s;
}
