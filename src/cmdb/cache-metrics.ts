// The CMDB's health as this process sees it, for Prometheus: an operator alerts on
// fc_cmdb_healthy == 0 (the sites are served from the caches, nothing new can start), and watches
// fc_cmdb_revision_lag (a cache that falls behind routes on old data).

import { Gauge, type Registry } from 'prom-client';
import type { CmdbCache } from './cache.js';

export function registerCmdbMetrics(registry: Registry, cache: CmdbCache): void {
  new Gauge({
    name: 'fc_cmdb_healthy', help: '1 while the CMDB answers this process\'s probes (every second, within FC_CMDB_TIMEOUT), else 0', registers: [registry],
    collect() {
      this.set(cache.cmdbHealthy ? 1 : 0);
    },
  });
  new Gauge({
    name: 'fc_cmdb_cache_revision', help: 'The highest CMDB revision this process\'s cache has applied (every write takes the next one)', registers: [registry],
    collect() {
      this.set(cache.revisions.seen);
    },
  });
  new Gauge({
    name: 'fc_cmdb_revision_lag', help: 'Revisions the CMDB was ahead of this process\'s cache at its last probe (every second), less those applied since: 0 when caught up', registers: [registry],
    collect() {
      this.set(cache.revisions.lag);
    },
  });
  new Gauge({
    name: 'fc_cmdb_outages', help: 'CMDB outages this process has seen since it started', registers: [registry],
    collect() {
      this.set(cache.health.outageCount);
    },
  });
}
