// Lifespan decisions. Every container lives for its app's lifespan and is then drained: no new
// requests, in-flight ones finish, then it is stopped and removed, so containers are recycled and
// always run the newest image. Pure functions of the containers' times and `now`.
//
// Metabolism without a gap (make before break): a container that is still wanted when its
// lifespan ends (it has traffic, or the app needs it for minContainers) gets a replacement
// registered a lead time before the end, long enough for a start as measured; it is drained only
// once that replacement is ready (or failed, or took too long).

export interface AgingContainer {
  id: string;
  phase: 'starting' | 'ready' | 'draining' | 'stopping';
  expiresAt: number | null;
}

export interface MortalContainer extends AgingContainer {
  app: string;
  /** The replacement registered for it: still coming up, ready, or gone (failed, removed). */
  successor: 'pending' | 'ready' | 'gone' | null;
  /** Needs a replacement when it ends: it has traffic, or the app would fall below minContainers. */
  wanted: boolean;
  /**
   * Set for a container of a host being drained (its expiresAt is then the drain's start): while
   * wanted, it keeps serving until a replacement elsewhere is ready, or until this time (its own
   * lifespan's end plus the overstay). A replacement that could not be placed or failed does not
   * end it early: a drain makes before it breaks.
   */
  holdUntil?: number;
}

export interface MetabolismPolicy {
  /** How long before its end a container's replacement is registered, per app. */
  leadMs(app: string): number;
  /** How long past its end a container waits for a replacement still coming up. */
  maxOverstayMs: number;
}

/**
 * Which containers get a replacement now, and which are drained now. Example, lifespan 10 s,
 * starts measured at 300 ms so a lead of 1.6 s: ready at t=0 with traffic; at t=8.4 s a
 * replacement is registered; at t=10 s, the replacement ready since t=8.8 s, it is drained. Had the
 * replacement not been ready, it would keep serving until it was, or until t=10 s + maxOverstay.
 * Without traffic (and above minContainers) it is simply drained at t=10 s.
 * On a host drained at t=3 s (holdUntil t=10 s + maxOverstay): expiresAt is t=3 s, so a wanted
 * container gets its replacement (on another host) at t=3 s and is drained once it is ready; with
 * no room elsewhere it keeps serving, trying again, until holdUntil. An idle one goes at t=3 s.
 */
export function metabolism(containers: Iterable<MortalContainer>, now: number, policy: MetabolismPolicy): { replace: string[]; drain: string[] } {
  const replace: string[] = [];
  const drain: string[] = [];
  for (const c of containers) {
    if (c.phase !== 'ready' || c.expiresAt === null) continue;
    if (c.successor === null && c.wanted && now >= c.expiresAt - policy.leadMs(c.app)) replace.push(c.id);
    if (now < c.expiresAt) continue;
    const holding = c.holdUntil !== undefined && c.wanted && c.successor !== 'ready';
    const waiting = holding || c.successor === 'pending' || (c.successor === null && c.wanted);
    if (!waiting || now >= (c.holdUntil ?? c.expiresAt + policy.maxOverstayMs)) drain.push(c.id);
  }
  return { replace, drain };
}

/**
 * Lead time for replacements: twice the slowest of the app's recent starts plus a second, so a
 * replacement is ready before the end even when a start is slower than usual; 3 s before any start
 * was measured. Example: starts of 250, 310 and 280 ms: lead 1.62 s.
 */
export function replacementLead(recentStartsMs: readonly number[]): number {
  if (recentStartsMs.length === 0) return 3_000;
  return 2 * Math.max(...recentStartsMs) + 1_000;
}

export interface FreezableContainer {
  id: string;
  phase: 'starting' | 'ready' | 'draining' | 'stopping';
  frozen: boolean;
  inflight: number;
  held: number;
  /** Its last request's end, or when it became ready or was last thawed, whichever is latest. */
  lastActiveAt: number;
  /** The app's freezeAfter in ms; 0: never. */
  freezeAfterMs: number;
}

/**
 * Ready containers idle long enough to be frozen. Example, freezeAfter 5 s: last request ended
 * at t=10 s, nothing in flight: frozen at t=15 s; a request at t=20 s thaws it, and it is frozen
 * again 5 s after that request ends.
 */
export function dueForFreeze(containers: Iterable<FreezableContainer>, now: number): string[] {
  const due: string[] = [];
  for (const c of containers) {
    if (c.phase !== 'ready' || c.frozen || c.freezeAfterMs <= 0 || c.inflight > 0 || c.held > 0) continue;
    if (now - c.lastActiveAt >= c.freezeAfterMs) due.push(c.id);
  }
  return due;
}

/**
 * The multiplier of a container's freezeAfter after a thaw: doubled (up to 16) when it was
 * frozen for less than its freezeAfter (a request comes about as often as it freezes: freezing
 * buys nothing and costs a pause, a thaw and their writes each time), back to 1 after a longer
 * sleep. Example, freezeAfter 5 s, a request every 6 s: frozen 1 s each time, so it waits 10 s,
 * then 20 s, and stays warm; once requests stop for longer, it freezes after 5 s again.
 */
export function freezeBackoffAfterThaw(backoff: number, frozenForMs: number, freezeAfterMs: number): number {
  return frozenForMs < freezeAfterMs ? Math.min(16, backoff * 2) : 1;
}

export interface DrainingContainer {
  inflight: number;
  drainingSince: number;
}

export interface DrainPolicy {
  /** Keep serving late arrivals (routed before the proxies heard of the drain) this long. */
  graceMs: number;
  /** Stop anyway after this long, even with requests in flight. */
  timeoutMs: number;
}

/**
 * Whether a draining container may be stopped now. Example, grace 1 s, timeout 30 s: drained at
 * t=0 with 3 requests in flight that end at t=0.4 s: stop at t=1 s (grace). A request stuck until
 * t=45 s: stop at t=30 s (timeout), and that request fails.
 */
export function drainDecision(c: DrainingContainer, now: number, policy: DrainPolicy): 'wait' | 'stop' {
  const elapsed = now - c.drainingSince;
  if (elapsed >= policy.timeoutMs) return 'stop';
  if (c.inflight === 0 && elapsed >= policy.graceMs) return 'stop';
  return 'wait';
}

/** When a container that became ready at `readyAt` must be drained. */
export function expiryOf(readyAt: number, lifespanSeconds: number): number {
  return readyAt + lifespanSeconds * 1000;
}
