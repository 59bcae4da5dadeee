// What the dispatcher needs from a container engine. The dispatcher owns this interface;
// runtime/docker-runtime.ts implements it with dockerode, and the tests' fake runtime with plain
// processes on loopback. Create and start are separate so a later pool can create ahead of need.

import type { CpuCounters } from './signals/cgroup.js';

export interface ContainerSpec {
  /** Engine-side name, unique on the host. */
  name: string;
  image: string;
  /** argv run instead of the image's entrypoint and command; null keeps them. */
  command: string[] | null;
  env: Record<string, string>;
  /** Port the app listens on inside the container. */
  port: number;
  /**
   * `host:container[:ro|rw]` bind mounts, already checked against the volume roots with host
   * paths resolved (dispatcher/volumes.ts); a missing host path fails the create.
   */
  volumes: string[];
  /** Numeric "uid[:gid]" to run as; null: the image's user, unless that is root (see the runtime). */
  user?: string | null;
  /** Root file system read-only, with empty tmpfs on /tmp and /run. */
  readOnlyRootfs?: boolean;
  /** CPU cores as a CFS quota (0.3 = 30 ms of every 100 ms). */
  cpus: number;
  /** Bytes; swap is not allowed beyond it. */
  memory: number;
  pidsLimit: number;
  /** Whether it may reach the internet (network-isolation.ts); absent: open. */
  egress?: 'open' | 'closed';
  labels: Record<string, string>;
}

export interface RuntimeContainer {
  id: string;
  name: string;
  labels: Record<string, string>;
  running: boolean;
  /** IP address the container is reachable at from this host, once running. */
  ip: string | null;
  exitCode: number | null;
  /** Frozen (paused): running, but none of its processes is scheduled. */
  paused?: boolean;
  /**
   * The container's main process as this host sees it, while running; it finds the container's
   * cgroup where its id alone does not. null when not running, or where the engine does not say (list).
   */
  pid: number | null;
}

export interface RuntimeEvent {
  type: 'die' | 'oom';
  id: string;
  labels: Record<string, string>;
  exitCode: number | null;
  /** Frozen (paused): running, but none of its processes is scheduled. */
  paused?: boolean;
}

/** One line of a container's output. */
export interface RuntimeLogLine {
  stream: 'stdout' | 'stderr';
  /** When the engine received it, ms since epoch. */
  at: number;
  /** Without its newline; cut at maxLineBytes (marked …); any other character as printed. */
  text: string;
}

/** A follow of a container's output: stop() ends it; `ended` settles once it ended either way. */
export interface LogFollow {
  stop(): void;
  readonly ended: Promise<void>;
}

/** What a runtime keeps made ahead of need (network sandboxes), bounded and counted. */
export interface WarmStats {
  /** Made and waiting. */
  ready: number;
  /** Starts that used one. */
  hits: number;
  /** Starts that found none. */
  misses: number;
  /** Ones that could not be made. */
  failures: number;
}

export interface ContainerRuntime {
  readonly name: string;
  /** Checks the engine answers; throws an FcError saying how to fix it if not. */
  ping(): Promise<void>;
  /**
   * After the dispatcher's first reconciliation: removes what an earlier process kept ahead of
   * need and left unused, and starts making it anew.
   */
  prepare(): Promise<void>;
  /** null where nothing is kept ahead of need. */
  warmStats(): WarmStats | null;
  /** Creates the container without starting it. Throws FC_ERR_IMAGE_NOT_FOUND or FC_ERR_START_FAILED. */
  create(spec: ContainerSpec): Promise<string>;
  /** Starts a created container and returns it with its IP. Throws FC_ERR_START_FAILED. */
  start(id: string): Promise<RuntimeContainer>;
  inspect(id: string): Promise<RuntimeContainer | null>;
  /** Containers, running or not, carrying all of these labels. */
  list(labels: Record<string, string>): Promise<RuntimeContainer[]>;
  /** SIGTERM, then SIGKILL after timeoutMs. A container that is already stopped or gone is fine. */
  stop(id: string, timeoutMs: number): Promise<void>;
  /** Removes the container, killing it if needed. A container already gone is fine. */
  remove(id: string): Promise<void>;
  /**
   * Freezes every process of a running container (the cgroup freezer; `docker pause`): it keeps
   * its memory and sockets and uses no CPU. Freezing a frozen container is fine.
   */
  freeze(id: string): Promise<void>;
  /** Lets a frozen container run again. Thawing one that is not frozen is fine. */
  thaw(id: string): Promise<void>;
  /** Changes the CPU quota of a running container, without a restart (scale-up). */
  update(id: string, change: { cpus: number }): Promise<void>;
  /**
   * CPU counters from the engine's stats API: the fallback for signals/cgroup.ts where the cgroup
   * files cannot be read (slower: an engine round trip). null when the container is gone or stopped,
   * or the runtime has none.
   */
  cpuStats(id: string): Promise<CpuCounters | null>;
  /** The last lines of the container's output, for error messages. */
  logs(id: string, tail: number): Promise<string>;
  /**
   * Follows the container's stdout and stderr, line by line, from sinceMs (null: from its start)
   * until stop() or the container's end. Lines longer than maxLineBytes are cut. Failures end the
   * follow (the caller may follow again); they never throw.
   */
  followLogs(id: string, o: { sinceMs: number | null; maxLineBytes: number }, onLine: (line: RuntimeLogLine) => void): LogFollow;
  /** Calls back on container deaths among those with these labels; returns the unsubscribe. */
  watch(labels: Record<string, string>, onEvent: (event: RuntimeEvent) => void): () => void;
  close(): Promise<void>;
}

/** Labels every container the system creates carries, so reconciliation and tests find exactly theirs. */
export const labelKeys = {
  managed: 'fastcontainer.managed',
  app: 'fastcontainer.app',
  container: 'fastcontainer.container',
  host: 'fastcontainer.host',
} as const;
