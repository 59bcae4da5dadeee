// Each role keeps its own Prometheus registry; the admin listener of the process (admin.ts) serves
// them all at /metrics, so `up` (all roles in one process) and split roles expose the same series.
// Process metrics (CPU, memory, event loop lag) are collected once per process.

import type { ServerResponse } from 'node:http';
import { Registry, collectDefaultMetrics, type Counter, type Histogram } from 'prom-client';

export function createRegistry(role: string): Registry {
  const registry = new Registry();
  registry.setDefaultLabels({ role });
  return registry;
}

let processRegistry: Registry | undefined;

export function processMetrics(): Registry {
  if (processRegistry === undefined) {
    processRegistry = new Registry();
    collectDefaultMetrics({ register: processRegistry, prefix: 'fc_' });
  }
  return processRegistry;
}

export async function serveMetrics(registry: Registry, res: ServerResponse): Promise<void> {
  const body = `${await registry.metrics()}\n${await processMetrics().metrics()}`;
  res.writeHead(200, { 'content-type': registry.contentType, 'content-length': Buffer.byteLength(body) });
  res.end(body);
}

/** Latency buckets in seconds, from a warm request (~1 ms) to a slow cold start (~30 s). */
export const latencyBuckets = [0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30];

/**
 * Counts a request by app and status and observes its seconds by app, through the metrics'
 * children kept per app and status: prom-client otherwise hashes the label object of every call,
 * four times per request when the proxy and the dispatcher share a process. The metrics are never
 * reset, so the children stay theirs; they are as many as the series prom-client keeps anyway.
 */
export class RequestRecorder {
  private readonly byApp = new Map<string, { seconds: Histogram.Internal<'app'>; statuses: Map<number, Counter.Internal> }>();

  constructor(private readonly requests: Counter<'app' | 'status'>, private readonly seconds: Histogram<'app'>) {}

  record(app: string, status: number, seconds: number): void {
    let a = this.byApp.get(app);
    if (a === undefined) this.byApp.set(app, (a = { seconds: this.seconds.labels(app), statuses: new Map() }));
    let counter = a.statuses.get(status);
    if (counter === undefined) a.statuses.set(status, (counter = this.requests.labels(app, String(status))));
    counter.inc();
    a.seconds.observe(seconds);
  }
}
