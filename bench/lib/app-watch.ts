// Watching one app through the CoreAPI while a benchmark runs: its scaling events
// (GET /v1/apps/:name/events, which keeps only the newest 200, so it is polled and deduplicated)
// and its container entries (GET /v1/apps/:name/containers: each entry's state and cpus over time,
// startedAt and readyAt). Where a build has no events API yet, the entries alone still show
// when a container became ready, began draining, or had its cpus changed. Also: waiting for an
// app to answer (warm) and for its ready containers.

import { request } from 'undici';
import { ApiError, type Fastcontainer } from './fastcontainer.js';

export type EventKind = 'scale-up' | 'scale-down' | 'scale-out' | 'scale-in' | 'replace' | 'ready' | 'start-failed' | 'drain' | 'died' | 'manual';

export interface AppEvent {
  /** Epoch ms. */
  at: number;
  app: string;
  kind: EventKind | string;
  container: string | null;
  host: string | null;
  reason: string | null;
  from: unknown;
  to: unknown;
}

/** What the container entries showed, per container, first seen at each poll (epoch ms). */
export interface ContainerTrack {
  id: string;
  startedAt: number | null;
  readyAt: number | null;
  /** When a poll first saw it draining or gone (or no longer listed after being live). */
  drainSeenAt: number | null;
  /** cpus as polled: [epoch ms, cpus] each time it changed. */
  cpus: [number, number][];
}

export function epochMs(v: unknown): number {
  if (typeof v === 'number') return v;
  if (typeof v === 'string') return /^\d+$/.test(v) ? Number(v) : Date.parse(v);
  return Number.NaN;
}

function asEvent(raw: Record<string, unknown>): AppEvent {
  const str = (v: unknown) => (v === undefined || v === null ? null : String(v));
  return { at: epochMs(raw.at), app: String(raw.app ?? ''), kind: String(raw.kind ?? ''), container: str(raw.container), host: str(raw.host), reason: str(raw.reason), from: raw.from ?? null, to: raw.to ?? null };
}

/** The app's newest events, oldest first; null when this build has no events API. */
export async function listEvents(fc: Fastcontainer, app: string, limit = 200): Promise<AppEvent[] | null> {
  try {
    const body = (await fc.api('GET', `/v1/apps/${app}/events?limit=${limit}`)) as { events?: Record<string, unknown>[] };
    return (body.events ?? []).map(asEvent).sort((a, b) => a.at - b.at);
  } catch (err) {
    if (err instanceof ApiError && err.noSuchRoute) return null;
    throw err;
  }
}

/** Which of the endpoints a benchmark needs this build lacks (probed on an existing app). */
export async function missingEndpoints(fc: Fastcontainer, app: string, needs: readonly ('events' | 'scale')[]): Promise<string[]> {
  const missing: string[] = [];
  if (needs.includes('events') && (await listEvents(fc, app, 1)) === null) missing.push(`GET /v1/apps/${app}/events`);
  if (needs.includes('scale')) {
    // An empty body: a build that has the route answers 400 (names neither containers nor cpus).
    try {
      await fc.api('POST', `/v1/apps/${app}/scale`, {});
    } catch (err) {
      if (err instanceof ApiError && (err.noSuchRoute || err.status === 405)) missing.push(`POST /v1/apps/${app}/scale`);
    }
  }
  return missing;
}

export class AppWatch {
  readonly events = new Map<string, AppEvent>();
  readonly containers = new Map<string, ContainerTrack>();
  eventsApi = true;
  polls = 0;
  pollErrors = 0;
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<void> = Promise.resolve();
  private stopped = false;

  constructor(private readonly fc: Fastcontainer, readonly app: string, private readonly everyMs = 250) {}

  start(): this {
    const tick = () => {
      if (this.stopped) return;
      this.running = this.poll().finally(() => {
        if (!this.stopped) this.timer = setTimeout(tick, this.everyMs);
      });
    };
    tick();
    return this;
  }

  /** One more poll after the last one, so the end of the run is in. */
  async stop(): Promise<void> {
    this.stopped = true;
    if (this.timer !== undefined) clearTimeout(this.timer);
    await this.running;
    await this.poll();
  }

  async poll(): Promise<void> {
    this.polls++;
    const now = Date.now();
    try {
      const [events, entries] = await Promise.all([
        this.eventsApi ? listEvents(this.fc, this.app) : Promise.resolve(null),
        this.fc.api('GET', `/v1/apps/${this.app}/containers`).catch((err: unknown) => {
          if (err instanceof ApiError && err.status === 404) return { containers: [] }; // app deleted
          throw err;
        }) as Promise<{ containers: Record<string, unknown>[] }>,
      ]);
      if (events === null) this.eventsApi = false;
      for (const e of events ?? []) this.events.set(`${e.at}|${e.kind}|${e.container ?? ''}|${e.reason ?? ''}`, e);
      const listed = new Set<string>();
      for (const c of entries.containers) {
        const id = String(c.id);
        listed.add(id);
        const t = this.containers.get(id) ?? { id, startedAt: null, readyAt: null, drainSeenAt: null, cpus: [] };
        this.containers.set(id, t);
        if (typeof c.startedAt === 'number') t.startedAt = c.startedAt;
        if (typeof c.readyAt === 'number') t.readyAt = c.readyAt;
        if ((c.state === 'draining' || c.state === 'gone') && t.drainSeenAt === null) t.drainSeenAt = now;
        const cpus = typeof c.cpus === 'number' ? c.cpus : null;
        if (cpus !== null && t.cpus.at(-1)?.[1] !== cpus) t.cpus.push([now, cpus]);
      }
      for (const t of this.containers.values()) if (!listed.has(t.id) && t.readyAt !== null && t.drainSeenAt === null) t.drainSeenAt = now;
    } catch {
      this.pollErrors++;
    }
  }

  /** Every event seen, oldest first. */
  allEvents(): AppEvent[] {
    return [...this.events.values()].sort((a, b) => a.at - b.at);
  }
}

/** One request through the proxy that must answer 200: starts the first container before the load. */
export async function warm(fc: Fastcontainer, host: string, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  let last = '';
  while (Date.now() < deadline) {
    try {
      const res = await request(`${fc.proxyUrl}/`, { headers: { host }, headersTimeout: 30_000 });
      await res.body.dump();
      if (res.statusCode === 200) return;
      last = `status ${res.statusCode}`;
    } catch (err) {
      last = String(err);
    }
    await new Promise((r) => setTimeout(r, 200));
  }
  throw new Error(`${host} did not answer 200 within ${deadlineMs} ms (last: ${last})`);
}

/** Waits until the app has `n` ready containers. */
export async function readyContainers(fc: Fastcontainer, app: string, n: number, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  for (;;) {
    const { containers } = (await fc.api('GET', `/v1/apps/${app}/containers`)) as { containers: { state: string }[] };
    if (containers.filter((c) => c.state === 'ready').length >= n) return;
    if (Date.now() > deadline) throw new Error(`${app} did not have ${n} ready containers within ${deadlineMs} ms`);
    await new Promise((r) => setTimeout(r, 200));
  }
}

