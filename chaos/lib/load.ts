// Load for chaos scenarios: closed-loop clients (undici, keep-alive), each sending its next
// request when the last one ends, recording every request: when it went out and came back, the
// status (0: no answer) and, when asked, the start of the body (the hello image's whoami names
// the container). Bounded: a deadline per request and an explicit stop().

import { Agent, request } from 'undici';

export interface Rec {
  /** Epoch ms sent, answered. */
  t0: number;
  t1: number;
  status: number;
  error?: string;
  body?: string;
  retryAfter?: string;
  /** The error's stable code (FC_ERR_...) when an error answer names one. */
  code?: string;
}

export interface LoadOptions {
  url: string;
  host: string;
  path?: string;
  method?: 'GET' | 'POST';
  body?: string;
  concurrency: number;
  timeoutMs?: number;
  keepBody?: boolean;
  /**
   * Pause between one client's requests, ms (default 10: a client sends at most 100 a second, so
   * that instant errors do not spin the load generator on a shared machine).
   */
  thinkMs?: number;
}

export interface Load {
  recs: Rec[];
  stop(): Promise<void>;
}

export async function once(o: Omit<LoadOptions, 'concurrency'> & { agent?: Agent; headers?: Record<string, string> }): Promise<Rec> {
  const t0 = Date.now();
  try {
    const res = await request(`${o.url}${o.path ?? '/'}`, {
      method: o.method ?? 'GET',
      headers: { host: o.host, ...o.headers },
      body: o.body ?? null,
      headersTimeout: o.timeoutMs ?? 10_000,
      bodyTimeout: o.timeoutMs ?? 10_000,
      ...(o.agent ? { dispatcher: o.agent } : {}),
    });
    const text = await res.body.text();
    const ra = res.headers['retry-after'];
    const code = res.statusCode >= 400 ? /FC_ERR_[A-Z_]+/.exec(text)?.[0] : undefined;
    return {
      t0,
      t1: Date.now(),
      status: res.statusCode,
      ...(o.keepBody ? { body: text.slice(0, 200) } : {}),
      ...(ra === undefined ? {} : { retryAfter: String(ra) }),
      ...(code === undefined ? {} : { code }),
    };
  } catch (err) {
    return { t0, t1: Date.now(), status: 0, error: String((err as Error).message ?? err).slice(0, 80) };
  }
}

export function startLoad(o: LoadOptions): Load {
  const agent = new Agent({ connections: o.concurrency, keepAliveTimeout: 10_000 });
  const recs: Rec[] = [];
  let stopped = false;
  const worker = async () => {
    while (!stopped) {
      const r = await once({ ...o, agent });
      recs.push(r);
      // A connection refused or reset comes back at once: a short pause keeps a closed loop from spinning on it.
      const think = Math.max(o.thinkMs ?? 10, r.status === 0 ? 20 : 0);
      if (think > 0) await new Promise((r) => setTimeout(r, think));
    }
  };
  const workers = Array.from({ length: o.concurrency }, () => worker());
  return {
    recs,
    async stop() {
      stopped = true;
      await Promise.all(workers);
      await agent.close();
    },
  };
}

export const ok = (r: Rec): boolean => r.status >= 200 && r.status < 400;

export interface Summary {
  sent: number;
  failed: number;
  p50: number;
  p99: number;
  max: number;
  /** "3× 503, 2× ECONNRESET" */
  kinds: string;
}

function pct(sorted: number[], p: number): number {
  if (sorted.length === 0) return 0;
  return sorted[Math.min(sorted.length - 1, Math.floor((sorted.length - 1) * p))] as number;
}

export function summarize(recs: readonly Rec[]): Summary {
  const lat = recs.map((r) => r.t1 - r.t0).sort((a, b) => a - b);
  const kinds = new Map<string, number>();
  for (const r of recs.filter((x) => !ok(x))) {
    const k = r.status === 0 ? (r.error ?? 'error') : `${r.status}${r.code === undefined ? '' : ` ${r.code}`}`;
    kinds.set(k, (kinds.get(k) ?? 0) + 1);
  }
  return {
    sent: recs.length,
    failed: recs.filter((r) => !ok(r)).length,
    p50: pct(lat, 0.5),
    p99: pct(lat, 0.99),
    max: lat[lat.length - 1] ?? 0,
    kinds: [...kinds].map(([k, n]) => `${n}× ${k}`).join(', '),
  };
}

/** Epoch ms of the first successful answer sent at or after `t` (undefined: none). */
export function firstOkAfter(recs: readonly Rec[], t: number, pred: (r: Rec) => boolean = ok): number | undefined {
  let best: number | undefined;
  for (const r of recs) if (r.t0 >= t && pred(r) && (best === undefined || r.t1 < best)) best = r.t1;
  return best;
}

export const secs = (ms: number | undefined): string => (ms === undefined ? '—' : `${(ms / 1000).toFixed(1)} s`);
