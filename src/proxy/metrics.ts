import { Counter, Histogram, type Registry } from 'prom-client';
import { latencyBuckets, RequestRecorder } from '../shared/metrics.js';

export class ProxyMetrics {
  readonly requests: Counter<'app' | 'status'>;
  readonly requestSeconds: Histogram<'app'>;
  readonly registrations: Counter<'app'>;
  readonly retries: Counter<'reason'>;
  /** requests and requestSeconds, per request. */
  readonly recorder: RequestRecorder;

  constructor(registry: Registry) {
    this.requests = new Counter({ name: 'fc_proxy_requests_total', help: 'Requests the proxy answered, by app and status ("" app: unknown host)', labelNames: ['app', 'status'], registers: [registry] });
    this.requestSeconds = new Histogram({ name: 'fc_proxy_request_seconds', help: 'Time from a request reaching the proxy to the end of its answer', labelNames: ['app'], buckets: latencyBuckets, registers: [registry] });
    this.registrations = new Counter({ name: 'fc_proxy_registrations_total', help: 'Container entries the proxy registered for apps that had none', labelNames: ['app'], registers: [registry] });
    this.recorder = new RequestRecorder(this.requests, this.requestSeconds);
    this.retries = new Counter({ name: 'fc_proxy_retries_total', help: 'Requests sent again to another container, by reason', labelNames: ['reason'], registers: [registry] });
  }
}
