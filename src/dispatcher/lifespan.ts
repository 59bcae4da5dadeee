// Lifespan decisions. Every container lives for its app's lifespan and is then drained: no new
// requests, in-flight ones finish, then it is stopped and removed, so containers are recycled and
// always run the newest image. Pure functions of the containers' times and `now`.

export interface AgingContainer {
  id: string;
  phase: 'starting' | 'ready' | 'draining' | 'stopping';
  expiresAt: number | null;
}

/** Ready containers whose lifespan is over. */
export function dueForDrain(containers: Iterable<AgingContainer>, now: number): string[] {
  const due: string[] = [];
  for (const c of containers) if (c.phase === 'ready' && c.expiresAt !== null && c.expiresAt <= now) due.push(c.id);
  return due;
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
