// Every automatic decision and lifecycle step of a container, said three ways: a log line with its
// reason, a counter in /metrics, and an event in the CMDB that `GET /v1/apps/:name/events` and
// `fastcontainer events` list (newest first, bounded per app). Losing an event to a CMDB hiccup
// never fails the action it describes.

import type { AppEvent, AppEventKind } from '../cmdb/types.js';
import type { DispatcherContext } from './context.js';

export interface EventInput {
  app: string;
  kind: AppEventKind;
  container?: string | null;
  reason: string;
  from?: number | null;
  to?: number | null;
}

export function recordEvent(ctx: DispatcherContext, e: EventInput): void {
  const event: AppEvent = {
    at: ctx.deps.clock.now(),
    app: e.app,
    kind: e.kind,
    container: e.container ?? null,
    host: ctx.s.hostId,
    reason: e.reason,
    from: e.from ?? null,
    to: e.to ?? null,
  };
  ctx.metrics.events.inc({ app: e.app, kind: e.kind });
  ctx.log.info({ app: e.app, container: event.container, event: e.kind, from: event.from, to: event.to, reason: e.reason }, `${e.kind}: ${e.reason}`);
  ctx.deps.store.appendEvent(event).catch((err: unknown) => ctx.log.warn({ err: (err as Error).message, app: e.app }, 'could not record an event in the CMDB'));
}
