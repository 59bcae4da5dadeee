import { Counter, Histogram, type Registry } from 'prom-client';
import { latencyBuckets, RequestRecorder } from '../shared/metrics.js';

export class ProxyMetrics {
  readonly requests: Counter<'app' | 'status'>;
  readonly requestSeconds: Histogram<'app'>;
  readonly registrations: Counter<'app'>;
  readonly retries: Counter<'reason'>;
  /** Requests of an app that found all its slots at this proxy taken: queued, rejected, timed out in the queue. */
  readonly limited: Counter<'app' | 'outcome'>;
  /** Requests answered 408 because the client was too slow with its body. */
  readonly slowClients: Counter<'app' | 'code'>;
  /** Answers cut because their client took none of them for FC_SEND_TIMEOUT. */
  readonly slowReaders: Counter;
  /** requests and requestSeconds, per request. */
  readonly recorder: RequestRecorder;

  constructor(registry: Registry) {
    this.requests = new Counter({ name: 'fc_proxy_requests_total', help: 'Requests the proxy answered, by app and status ("" app: unknown host)', labelNames: ['app', 'status'], registers: [registry] });
    this.requestSeconds = new Histogram({ name: 'fc_proxy_request_seconds', help: 'Time from a request reaching the proxy to the end of its answer', labelNames: ['app'], buckets: latencyBuckets, registers: [registry] });
    this.registrations = new Counter({ name: 'fc_proxy_registrations_total', help: 'Container entries the proxy registered for apps that had none', labelNames: ['app'], registers: [registry] });
    this.recorder = new RequestRecorder(this.requests, this.requestSeconds);
    this.limited = new Counter({ name: 'fc_proxy_app_limited_total', help: 'Requests that found all of their app\'s slots at this proxy taken, by outcome: queued, rejected (503, queue full), timeout (503 after the queue wait)', labelNames: ['app', 'outcome'], registers: [registry] });
    this.slowClients = new Counter({ name: 'fc_proxy_slow_clients_total', help: 'Requests answered 408 because the client sent its body too slowly, by error code', labelNames: ['app', 'code'], registers: [registry] });
    this.slowReaders = new Counter({ name: 'fc_proxy_slow_readers_total', help: 'Answers cut off because their client took none of them for FC_SEND_TIMEOUT', registers: [registry] });
    this.retries = new Counter({ name: 'fc_proxy_retries_total', help: 'Requests sent again to another container, by reason', labelNames: ['reason'], registers: [registry] });
  }
}
