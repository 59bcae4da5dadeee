// ContainerRuntime on a Docker engine, through dockerode. Containers get no privileges: every
// capability dropped, no-new-privileges, a CFS CPU quota (changeable live for scale-up), a memory
// limit without extra swap and a pids limit. With isolation (tenant-network.ts) they cannot reach
// the host, each other or blocked networks.

import Docker from 'dockerode';
import { FcError } from '../../shared/errors.js';
import { Writable } from 'node:stream';
import { labelKeys, type ContainerRuntime, type ContainerSpec, type LogFollow, type RuntimeContainer, type RuntimeEvent, type RuntimeLogLine, type WarmStats } from '../container-runtime.js';
import { LineSplitter, lineText, splitTimestamp } from '../log-lines.js';
import type { CpuCounters } from '../signals/cgroup.js';
import { containerUser } from './image-user.js';
import { bindMounts, READ_ONLY_TMPFS } from './mounts.js';
import type { ContainerFacts, IsolationPolicy } from './network-isolation.js';
import { SandboxPool, sandboxLabels, type Sandbox, type SandboxPoolOptions } from './network-sandboxes.js';
import { TenantNetwork } from './tenant-network.js';

/** CFS period; the quota is cpus times this. */
const CPU_PERIOD_US = 100_000;

/** Longest wait for one engine call (the event stream has none). */
const ENGINE_TIMEOUT_MS = 60_000;

export interface DockerRuntimeOptions {
  /** DOCKER_HOST form: unix:///var/run/docker.sock or tcp://host:2375. */
  dockerHost: string;
  network: string;
  /** FC_ROOT_IMAGES: images whose containers may run as root; every other runs as a non-root user. */
  rootImages?: readonly string[];
  /** Network sandboxes made ahead of need (network-sandboxes.ts); none if absent. */
  sandboxes?: Omit<SandboxPoolOptions, 'network'>;
  /**
   * The network is the dispatcher's own (made if missing) and, with a policy, isolated
   * (tenant-network.ts). Absent: `network` is used as it is, without rules (tests on `bridge`).
   */
  isolation?: { hostId: string; policy: IsolationPolicy | null };
}

/** On app containers: the app's egress, so a restarted dispatcher knows which rules it needs. */
export const egressLabel = 'fastcontainer.egress';

export function dockerConnection(dockerHost: string): Docker.DockerOptions {
  const u = new URL(dockerHost);
  if (u.protocol === 'unix:') return { socketPath: u.pathname };
  return { host: u.hostname, port: Number(u.port || 2375), protocol: 'http' };
}

interface DockerError {
  statusCode?: number;
  json?: { message?: string } | null;
  message?: string;
}

function engineMessage(err: unknown): string {
  const e = err as DockerError;
  return e.json?.message ?? e.message ?? String(err);
}

function isStatus(err: unknown, ...codes: number[]): boolean {
  return codes.includes((err as DockerError).statusCode ?? 0);
}

/** An engine failure with a stable code, for callers that answer HTTP requests. */
function engineError(what: string, err: unknown): FcError {
  return new FcError('FC_ERR_ENGINE', `Docker failed to ${what}: ${engineMessage(err)}`, {}, { cause: err, retryAfter: 5 });
}

/** Docker's log stream for a container without a TTY: frames of an 8-byte header and a payload. */
export function demuxLogs(buf: Buffer): string {
  const out: Buffer[] = [];
  let i = 0;
  while (i + 8 <= buf.length) {
    const size = buf.readUInt32BE(i + 4);
    out.push(buf.subarray(i + 8, i + 8 + size));
    i += 8 + size;
  }
  return Buffer.concat(out).toString('utf8');
}

export class DockerRuntime implements ContainerRuntime {
  readonly name = 'docker';
  private readonly docker: Docker;
  /** A second client without a timeout, for the long-lived event stream. */
  private readonly events: Docker;
  private readonly watchers = new Set<NodeJS.ReadableStream>();
  private readonly sandboxes: SandboxPool;
  /** The sandbox each container this process made joined; null: it made its own namespace. */
  private readonly joined = new Map<string, string | null>();
  private readonly network: TenantNetwork | null;
  private networkReady: Promise<void> | null = null;

  constructor(private readonly options: DockerRuntimeOptions) {
    this.docker = new Docker({ ...dockerConnection(options.dockerHost), timeout: ENGINE_TIMEOUT_MS });
    this.events = new Docker(dockerConnection(options.dockerHost));
    this.sandboxes = new SandboxPool(this.docker, {
      size: 0, image: 'fastcontainer/hello', labels: {}, warn: () => undefined, ...options.sandboxes, network: options.network,
    });
    const iso = options.isolation;
    this.network = iso === undefined ? null : new TenantNetwork(this.docker, {
      name: options.network, hostId: iso.hostId, policy: iso.policy, warn: options.sandboxes?.warn ?? (() => undefined),
    });
  }

  /**
   * Makes the network ready once (the first of ping, prepare or create does): made if missing,
   * isolation rules written for it and for the containers an earlier process left on it.
   */
  private ensureNetwork(): Promise<void> {
    const network = this.network;
    if (network === null) return Promise.resolve();
    this.networkReady ??= (async () => {
      const existing = new Map<string, ContainerFacts>();
      const own = this.options.sandboxes?.labels ?? {};
      if (network.isolated && Object.keys(own).length > 0) {
        for (const c of await this.list(own)) {
          const sandbox = c.labels[sandboxLabels.joined];
          const app = c.labels[labelKeys.app];
          if (app === undefined || c.ip === null) continue;
          // By its sandbox; one made in a namespace of its own (before its app had rules) by its id.
          existing.set(sandbox ?? c.id, { ip: c.ip, app, egress: c.labels[egressLabel] === 'closed' ? 'closed' : 'open' });
        }
      }
      await network.prepare(existing);
    })().catch((err: unknown) => {
      this.networkReady = null;
      throw err;
    });
    return this.networkReady;
  }

  async prepare(): Promise<void> {
    await this.ensureNetwork();
    if (!this.sandboxes.enabled) return;
    const joined = new Set<string>();
    for (const c of await this.docker.listContainers({ all: true, filters: { label: [sandboxLabels.joined] } })) {
      const id = c.Labels[sandboxLabels.joined];
      if (id !== undefined) joined.add(id);
    }
    await this.sandboxes.prepare(joined);
  }

  warmStats(): WarmStats | null {
    return this.sandboxes.enabled ? this.sandboxes.stats() : null;
  }

  async ping(): Promise<void> {
    try {
      await this.docker.ping();
    } catch (err) {
      throw new FcError('FC_ERR_CONFIG', `the Docker engine at ${this.options.dockerHost} does not answer (${engineMessage(err)}); start dockerd (bash scripts/setup.sh does) or set DOCKER_HOST`, { dockerHost: this.options.dockerHost }, { cause: err });
    }
    await this.ensureNetwork();
  }

  async create(spec: ContainerSpec): Promise<string> {
    await this.ensureNetwork();
    const app = spec.labels[labelKeys.app] ?? '';
    const egress = spec.egress ?? 'open';
    const ownRules = this.network?.needsOwnRules(app, egress) === true;
    let sandbox = this.sandboxes.take();
    try {
      // A container with rules of its own gets its address before it exists (a sandbox made now
      // if none is ready) and its rules before its code runs: never a moment without them.
      if (ownRules) {
        sandbox ??= await this.sandboxes.makeNow().catch((err: unknown) => {
          throw new FcError('FC_ERR_START_FAILED', `could not make the network namespace of a container of app ${app}: ${engineMessage(err)}`, {}, { cause: err, retryAfter: 5 });
        });
        await this.network?.add(sandbox.id, { ip: sandbox.ip, app, egress }).catch((err: unknown) => {
          throw new FcError('FC_ERR_START_FAILED', `could not install the network rules of a container of app ${app}: ${(err as Error).message}`, {}, { cause: err, retryAfter: 5 });
        });
      }
      const id = await this.createIn({ ...spec, labels: { ...spec.labels, [egressLabel]: egress } }, sandbox);
      this.joined.set(id, sandbox?.id ?? null);
      return id;
    } catch (err) {
      if (sandbox !== null) {
        this.sandboxes.discard(sandbox);
        await this.network?.forget(sandbox.id).catch(() => undefined);
      }
      throw err;
    }
  }

  /** Creates the container in a network namespace of its own: a sandbox's, or a new one. */
  private async createIn(spec: ContainerSpec, sandbox: Sandbox | null): Promise<string> {
    try {
      const user = containerUser({ appUser: spec.user ?? null, imageUser: await this.imageUser(spec.image), image: spec.image, rootImages: this.options.rootImages ?? [] });
      const container = await this.docker.createContainer({
        name: spec.name,
        Image: spec.image,
        ...(user === undefined ? {} : { User: user }),
        // The app's command replaces the image's entrypoint and command both, as Kubernetes' does.
        ...(spec.command === null ? {} : { Entrypoint: spec.command, Cmd: [] }),
        Env: Object.entries(spec.env).map(([k, v]) => `${k}=${v}`),
        Labels: sandbox === null ? spec.labels : { ...spec.labels, [sandboxLabels.joined]: sandbox.id },
        ...(sandbox === null ? { ExposedPorts: { [`${spec.port}/tcp`]: {} } } : {}),
        HostConfig: {
          NetworkMode: sandbox === null ? this.options.network : `container:${sandbox.id}`,
          Mounts: bindMounts(spec.volumes),
          ...(spec.readOnlyRootfs === true ? { ReadonlyRootfs: true, Tmpfs: { ...READ_ONLY_TMPFS } } : {}),
          CpuPeriod: CPU_PERIOD_US,
          CpuQuota: Math.round(spec.cpus * CPU_PERIOD_US),
          Memory: spec.memory,
          MemorySwap: spec.memory,
          PidsLimit: spec.pidsLimit,
          Privileged: false,
          CapDrop: ['ALL'],
          SecurityOpt: ['no-new-privileges'],
          RestartPolicy: { Name: 'no' },
          // Bounded on the host's disk; each entry names its app and container entry (the json-file
          // "attrs"), so a node's log collector tailing the files can ship them per app.
          LogConfig: { Type: 'json-file', Config: { 'max-size': '1m', 'max-file': '2', labels: `${labelKeys.app},${labelKeys.container}` } },
        },
      });
      return container.id;
    } catch (err) {
      const message = engineMessage(err);
      if (isStatus(err, 404) && /no such image/i.test(message)) {
        throw new FcError('FC_ERR_IMAGE_NOT_FOUND', `image "${spec.image}" is not on this host's Docker engine; build or load it (docker image ls shows what is there)`, { image: spec.image }, { cause: err, retryAfter: 5 });
      }
      throw new FcError('FC_ERR_START_FAILED', `Docker could not create a container from "${spec.image}": ${message}`, { image: spec.image }, { cause: err, retryAfter: 5 });
    }
  }

  /** The image's configured user (Config.User; "" is root). */
  private async imageUser(image: string): Promise<string> {
    const info = await this.docker.getImage(image).inspect();
    return info.Config?.User ?? '';
  }

  async start(id: string): Promise<RuntimeContainer> {
    try {
      await this.docker.getContainer(id).start();
    } catch (err) {
      if (!isStatus(err, 304)) {
        throw new FcError('FC_ERR_START_FAILED', `Docker could not start container ${id.slice(0, 12)}: ${engineMessage(err)}`, {}, { cause: err, retryAfter: 5 });
      }
    }
    // The next sandbox is made now that this start is done, not during it.
    this.sandboxes.refill();
    const info = await this.inspect(id);
    if (info === null) throw new FcError('FC_ERR_START_FAILED', `container ${id.slice(0, 12)} vanished as it started`, {}, { retryAfter: 5 });
    return info;
  }

  async inspect(id: string): Promise<RuntimeContainer | null> {
    try {
      const info = await this.docker.getContainer(id).inspect();
      const networks = info.NetworkSettings.Networks as Record<string, { IPAddress?: string }>;
      const legacy = (info.NetworkSettings as { IPAddress?: string }).IPAddress;
      const mode = info.HostConfig.NetworkMode ?? '';
      const ip = mode.startsWith('container:') ? await this.sandboxes.ipOf(mode.slice('container:'.length)) : networks[this.options.network]?.IPAddress || legacy || null;
      return {
        id: info.Id,
        name: info.Name.replace(/^\//, ''),
        labels: info.Config.Labels ?? {},
        running: info.State.Running,
        paused: info.State.Paused,
        ip: ip === '' ? null : ip,
        exitCode: info.State.Running ? null : info.State.ExitCode,
        pid: info.State.Running && info.State.Pid > 0 ? info.State.Pid : null,
      };
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw engineError(`inspect container ${id.slice(0, 12)}`, err);
    }
  }

  async list(labels: Record<string, string>): Promise<RuntimeContainer[]> {
    const rows = await this.docker
      .listContainers({ all: true, filters: { label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) } })
      .catch((err: unknown) => {
        throw engineError('list containers', err);
      });
    const containers = rows.filter((r) => r.Labels[sandboxLabels.role] !== 'sandbox');
    return Promise.all(containers.map(async (r) => {
      const networks = (r.NetworkSettings?.Networks ?? {}) as Record<string, { IPAddress?: string }>;
      const sandbox = r.Labels[sandboxLabels.joined];
      const ip = (sandbox === undefined ? networks[this.options.network]?.IPAddress : await this.sandboxes.ipOf(sandbox)) ?? '';
      return {
        id: r.Id,
        name: (r.Names[0] ?? '').replace(/^\//, ''),
        labels: r.Labels,
        // A frozen (paused) container is still running: reconciliation must not take it for dead.
        running: r.State === 'running' || r.State === 'paused',
        paused: r.State === 'paused',
        ip: ip === '' ? null : ip,
        exitCode: null,
        pid: null,
      };
    }));
  }

  async stop(id: string, timeoutMs: number): Promise<void> {
    try {
      await this.docker.getContainer(id).stop({ t: Math.ceil(timeoutMs / 1000) });
    } catch (err) {
      if (!isStatus(err, 304, 404)) throw engineError(`stop container ${id.slice(0, 12)}`, err);
    }
  }

  async remove(id: string): Promise<void> {
    // The sandbox it joined goes with it; for a container an earlier process made, its label says which.
    const known = this.joined.get(id);
    const sandbox = known !== undefined ? known : await this.docker.getContainer(id).inspect().then((i) => i.Config.Labels?.[sandboxLabels.joined] ?? null, () => null);
    try {
      await this.docker.getContainer(id).remove({ force: true, v: true });
    } catch (err) {
      // 409: removal already in progress.
      if (!isStatus(err, 404, 409)) throw engineError(`remove container ${id.slice(0, 12)}`, err);
    }
    this.joined.delete(id);
    if (sandbox !== null) this.sandboxes.release(sandbox);
    await this.network?.forget(sandbox ?? id).catch((err: unknown) => this.options.sandboxes?.warn('could not remove the network rules of a removed container; they are written again within 15 s', err));
  }

  async freeze(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).pause();
    } catch (err) {
      // Already paused is fine; a 409 for anything else (not running, restarting) is not.
      if (!/is already paused/.test(String((err as Error).message))) throw engineError(`freeze container ${id.slice(0, 12)}`, err);
    }
  }

  async thaw(id: string): Promise<void> {
    try {
      await this.docker.getContainer(id).unpause();
    } catch (err) {
      // Not paused: 409, or 500 with these words on older engines; 404: gone.
      if (!isStatus(err, 404, 409) && !/is not paused/.test(String((err as Error).message))) throw engineError(`thaw container ${id.slice(0, 12)}`, err);
    }
  }

  async update(id: string, change: { cpus: number }): Promise<void> {
    await this.docker
      .getContainer(id)
      .update({ CpuPeriod: CPU_PERIOD_US, CpuQuota: Math.round(change.cpus * CPU_PERIOD_US) })
      .catch((err: unknown) => {
        throw engineError(`change the CPU quota of container ${id.slice(0, 12)}`, err);
      });
  }

  async cpuStats(id: string): Promise<CpuCounters | null> {
    try {
      // one-shot: the numbers now, instead of waiting a second for a second sample (API >= 1.41;
      // older engines ignore it and are just slower).
      const s = await this.docker.getContainer(id).stats({ stream: false, 'one-shot': true });
      const cpu = s.cpu_stats as Partial<Docker.ContainerStats['cpu_stats']> | undefined;
      // A stopped container answers with zeros read at the zero time.
      if (cpu?.cpu_usage === undefined || s.read.startsWith('0001-')) return null;
      const t = cpu.throttling_data;
      return {
        periods: t?.periods ?? 0,
        throttledPeriods: t?.throttled_periods ?? 0,
        throttledNs: t?.throttled_time ?? 0,
        usageNs: cpu.cpu_usage.total_usage,
      };
    } catch (err) {
      if (isStatus(err, 404)) return null;
      throw engineError(`read the CPU counters of container ${id.slice(0, 12)}`, err);
    }
  }

  async logs(id: string, tail: number): Promise<string> {
    try {
      const buf = (await this.docker.getContainer(id).logs({ stdout: true, stderr: true, tail, follow: false })) as unknown as Buffer;
      return demuxLogs(Buffer.isBuffer(buf) ? buf : Buffer.from(String(buf))).trim();
    } catch {
      return '';
    }
  }

  /**
   * The engine's log endpoint with follow and timestamps, demultiplexed (a container without a
   * TTY sends stdout and stderr framed on one stream). It reads what the engine's log driver
   * keeps (json-file here, size-capped at create; other drivers through Docker's dual logging).
   */
  followLogs(id: string, o: { sinceMs: number | null; maxLineBytes: number }, onLine: (line: RuntimeLogLine) => void): LogFollow {
    let stopped = false;
    let stream: NodeJS.ReadableStream | undefined;
    let done!: () => void;
    const ended = new Promise<void>((resolve) => { done = resolve; });
    const sink = (kind: 'stdout' | 'stderr') => {
      // The timestamp prefix (about 31 bytes) comes on top of the line's own limit.
      const splitter = new LineSplitter(o.maxLineBytes + 40, (line, cut) => {
        const { at, rest } = splitTimestamp(line, Date.now());
        if (!stopped) onLine({ stream: kind, at, text: lineText(rest.subarray(0, o.maxLineBytes), cut || rest.length > o.maxLineBytes) });
      });
      const w = new Writable({ write(chunk: Buffer, _enc, cb) { splitter.push(chunk); cb(); }, final(cb) { splitter.end(); cb(); } });
      return { w, splitter };
    };
    const out = sink('stdout');
    const err = sink('stderr');
    const finish = () => {
      out.splitter.end();
      err.splitter.end();
      done();
    };
    // Docker's `since` is seconds, with a fraction.
    const since = o.sinceMs === null ? 0 : (o.sinceMs / 1000).toFixed(3);
    this.docker.getContainer(id).logs({ follow: true, stdout: true, stderr: true, timestamps: true, since: since as number })
      .then((s) => {
        stream = s as unknown as NodeJS.ReadableStream;
        if (stopped) {
          (stream as unknown as { destroy(): void }).destroy();
          return finish();
        }
        this.docker.modem.demuxStream(stream, out.w, err.w);
        stream.on('end', finish);
        stream.on('close', finish);
        stream.on('error', finish);
      })
      .catch(() => finish());
    return {
      ended,
      stop: () => {
        if (stopped) return;
        stopped = true;
        if (stream !== undefined) (stream as unknown as { destroy(): void }).destroy();
      },
    };
  }

  watch(labels: Record<string, string>, onEvent: (event: RuntimeEvent) => void): () => void {
    let stopped = false;
    let stream: NodeJS.ReadableStream | undefined;
    // After a dropped stream, ask again from the last event seen, so that none is missed.
    let since: number | undefined;
    const connect = () => {
      if (stopped) return;
      this.events.getEvents(
        {
          ...(since === undefined ? {} : { since }),
          filters: { type: ['container'], event: ['die', 'oom'], label: Object.entries(labels).map(([k, v]) => `${k}=${v}`) },
        },
        (err, s) => {
          if (err !== null || s === undefined) {
            setTimeout(connect, 1000).unref();
            return;
          }
          stream = s;
          this.watchers.add(s);
          let buffered = '';
          s.on('data', (chunk: Buffer) => {
            buffered += chunk.toString('utf8');
            let nl: number;
            while ((nl = buffered.indexOf('\n')) >= 0) {
              const line = buffered.slice(0, nl).trim();
              buffered = buffered.slice(nl + 1);
              if (line === '') continue;
              try {
                const e = JSON.parse(line) as { status?: string; Action?: string; id?: string; time?: number; Actor?: { ID?: string; Attributes?: Record<string, string> } };
                if (e.time !== undefined) since = e.time;
                const attributes = e.Actor?.Attributes ?? {};
                const { exitCode, ...rest } = attributes;
                if (rest[sandboxLabels.role] === 'sandbox') {
                  this.sandboxes.died(e.Actor?.ID ?? e.id ?? '');
                  continue;
                }
                onEvent({
                  type: (e.Action ?? e.status) === 'oom' ? 'oom' : 'die',
                  id: e.Actor?.ID ?? e.id ?? '',
                  labels: rest,
                  exitCode: exitCode === undefined ? null : Number(exitCode),
                });
              } catch {
                // A malformed event line is skipped; reconciliation catches what events miss.
              }
            }
          });
          s.on('close', () => {
            this.watchers.delete(s);
            if (!stopped) setTimeout(connect, 1000).unref();
          });
          s.on('error', () => undefined);
        },
      );
    };
    since = Math.floor(Date.now() / 1000);
    connect();
    return () => {
      stopped = true;
      if (stream !== undefined) (stream as unknown as { destroy(): void }).destroy();
    };
  }

  async close(): Promise<void> {
    await this.sandboxes.close();
    for (const s of this.watchers) (s as unknown as { destroy(): void }).destroy();
    this.watchers.clear();
    await this.network?.close();
  }
}
