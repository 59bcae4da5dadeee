// The CMDB's health as this process sees it, for Prometheus: an operator alerts on
// fc_cmdb_healthy == 0 (the sites are served from the caches, nothing new can start).

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
    name: 'fc_cmdb_outages', help: 'CMDB outages this process has seen since it started', registers: [registry],
    collect() {
      this.set(cache.health.outageCount);
    },
  });
}
