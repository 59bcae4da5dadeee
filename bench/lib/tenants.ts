// The many-tenants benchmark's apps, named by their number, so that the proxy processes it starts
// can make up the host names of apps they are told exist.

/** App number i: "t42". */
export const tenantName = (i: number): string => `t${i}`;

/** The host names app number i is seeded with: its own and www. */
export const tenantHostnames = (i: number): string[] => [`t${i}.tenants.test`, `www.t${i}.tenants.test`];

/** What the parent tells a tenant-proxy child (as JSON in FC_BENCH_TENANT_PROXY). */
export interface TenantProxyOptions {
  redisUrl: string;
  prefix: string;
  /** Apps seeded (numbered 0..apps-1), for the lookup timing. */
  apps: number;
  /** Host name lookups to time after the sync; 0: none. */
  lookups: number;
  /** Stay up and report every change the cache applies; otherwise exit once measured. */
  stay: boolean;
}

export interface SyncReport {
  type: 'synced';
  /** ms of CmdbCache.open: subscribe, snapshot, load. */
  syncMs: number;
  apps: number;
  containers: number;
  /** Before the store was opened (node, the modules, the proxy role's code). */
  rssBeforeMb: number;
  rssMb: number;
  heapUsedMb: number;
  heapTotalMb: number;
  externalMb: number;
  /** After a full GC. */
  rssGcMb: number;
  heapUsedGcMb: number;
  externalGcMb: number;
  /** ns per cache.appForHostname of a fresh string, null when not timed. */
  lookupNs: number | null;
  proxyUrl: string;
}

export interface MemoryReport {
  type: 'memory';
  rssMb: number;
  heapUsedMb: number;
  /** Seconds since the sync ended. */
  sinceSyncS: number;
}

export interface ChangeReport {
  type: 'change';
  rev: number;
}
