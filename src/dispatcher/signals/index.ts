// The autoscaler's signals, per container: what it served (RequestWindow, fed on the request path
// without allocating) and how it used its CPU (CgroupCpu reads the kernel's counters, CpuWindow
// turns samples of them into a throttled share and cores in use). Plain data out; the decisions
// that read them are elsewhere, as pure functions of these summaries and `now`.

export { CgroupCpu, parseCpuMaxV2, parseCpuStatV1, parseCpuStatV2, parseQuotaV1 } from './cgroup.js';
export type { CgroupCpuOptions, CgroupDir, CpuCounters, CpuQuota } from './cgroup.js';
export { CpuWindow } from './cpu-window.js';
export type { CpuSummary } from './cpu-window.js';
export { RequestWindow } from './request-window.js';
export type { WindowSummary } from './request-window.js';
