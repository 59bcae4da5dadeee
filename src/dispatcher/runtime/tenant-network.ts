// The Docker network the dispatcher's containers live on, and its isolation kept true. The
// dispatcher makes the network if it is missing (a bridge with inter-container traffic off and a
// bridge interface named after it, labelled with the host), and with isolation on writes the
// rules of network-isolation.ts: at start (from the containers already there, so a restart after
// a crash converges), whenever a container with rules of its own comes or goes, and every
// REAPPLY_MS (a firewall reload elsewhere, or dockerd re-creating DOCKER-USER, loses nothing for
// long). On a clean stop with no container left on the network, rules and network go (once the
// engine has let go of the endpoints of containers just removed).

import type Docker from 'dockerode';
import { FcError } from '../../shared/errors.js';
import { applyRuleset, iptablesProblem, removeRuleset } from './iptables.js';
import { bridgeNameOf, isolationRules, needsOwnRules, type ContainerFacts, type Egress, type IsolationPolicy } from './network-isolation.js';

/** How often the rules are written again even if nothing changed. */
const REAPPLY_MS = 15_000;

/**
 * How long close() waits for the engine to stop listing endpoints of containers already removed:
 * a removal returns before the network's inspection forgets the container's endpoint (a sandbox
 * the pool removed just before, say). 10 × 300 ms, the bound the tests' own clean-up
 * (removeHostAndNetwork) has used for the same lag.
 */
const SETTLE = { tries: 10, intervalMs: 300 };

/** Labels of a network the dispatcher made, so it removes only its own. */
export const networkLabels = { managed: 'fastcontainer.managed', host: 'fastcontainer.host' } as const;

export interface TenantNetworkOptions {
  name: string;
  hostId: string;
  /** null: no isolation rules (FC_NETWORK_ISOLATION=false); the network is still made. */
  policy: IsolationPolicy | null;
  warn(message: string, err: unknown): void;
  /** close()'s wait for the engine to let go of removed containers' endpoints; SETTLE if absent (tests shorten it). */
  settle?: { tries: number; intervalMs: number };
}

interface NetworkInfo {
  Id: string;
  Driver: string;
  Labels?: Record<string, string> | null;
  Options?: Record<string, string> | null;
  Containers?: Record<string, unknown> | null;
}

export class TenantNetwork {
  /** The bridge interface every container's packets leave by; known after prepare(). */
  bridge = '';
  /** Containers with rules of their own, by the sandbox (network namespace) they are in. */
  private readonly facts = new Map<string, ContainerFacts>();
  private queued: Promise<void> | null = null;
  /** Whether the queued write is to be a full one (jumps checked, IPv6 too). */
  private queuedFull = false;
  private last: Promise<void> = Promise.resolve();
  private timer: NodeJS.Timeout | undefined;
  private closed = false;

  constructor(private readonly docker: Docker, private readonly o: TenantNetworkOptions) {}

  get isolated(): boolean {
    return this.o.policy !== null;
  }

  /** Whether a container of `app` needs rules of its own (and so an address known before it runs). */
  needsOwnRules(app: string, egress: Egress): boolean {
    return this.o.policy !== null && needsOwnRules(this.o.policy, app, egress);
  }

  /**
   * Makes the network if missing, checks it is one isolation can hold, and writes the rules for
   * the network and for `existing` (containers an earlier process left, by sandbox id).
   */
  async prepare(existing: ReadonlyMap<string, ContainerFacts>): Promise<void> {
    const info = await this.ensureNetwork();
    const bridge = info.Options?.['com.docker.network.bridge.name'] ?? `br-${info.Id.slice(0, 12)}`;
    if (this.o.policy === null) {
      this.bridge = bridge;
      // Rules an earlier run with isolation left would go on half-working, unmaintained: a
      // container's allowed service would pass to whichever container gets its address next.
      // Without root or iptables (a likely reason to turn isolation off) there are none to remove.
      await removeRuleset(isolationRules({ name: this.o.name, bridge }, { blockedNetworks: [], services: [] }, [])).catch(() => undefined);
      return;
    }
    if (info.Options?.['com.docker.network.bridge.default_bridge'] === 'true') {
      throw new FcError('FC_ERR_CONFIG', `network isolation needs a network of the dispatcher's own, and "${this.o.name}" is Docker's default bridge, shared with every container on the engine: leave FC_DOCKER_NETWORK unset (the dispatcher makes fc-<host id>) or set FC_NETWORK_ISOLATION=false`, { network: this.o.name });
    }
    const problem = await iptablesProblem();
    if (problem !== null) throw new FcError('FC_ERR_CONFIG', `network isolation (FC_NETWORK_ISOLATION) cannot work: ${problem}; or set FC_NETWORK_ISOLATION=false`, {});
    // Known only now that the network is one isolation can hold, so close() never touches another.
    this.bridge = bridge;
    for (const [sandbox, f] of existing) if (needsOwnRules(this.o.policy, f.app, f.egress)) this.facts.set(sandbox, f);
    await this.converge(true);
    this.timer = setInterval(() => void this.converge(true).catch((err: unknown) => this.o.warn('could not write the network isolation rules again; the next try is in 15 s', err)), REAPPLY_MS);
    this.timer.unref();
  }

  /** Rules for a container about to be made in sandbox `sandbox`; resolves once they are in force. */
  async add(sandbox: string, f: ContainerFacts): Promise<void> {
    if (!this.needsOwnRules(f.app, f.egress)) return;
    this.facts.set(sandbox, f);
    await this.converge();
  }

  /** The container in sandbox `sandbox` is gone: its rules go. */
  async forget(sandbox: string): Promise<void> {
    if (!this.facts.delete(sandbox)) return;
    await this.converge();
  }

  /**
   * Leaves the rules in force while containers remain (they still need them); otherwise removes
   * rules and network. An endpoint the engine still lists for a container already removed is
   * waited out (bounded: after that the rules go, as no container needs them, and the network
   * stays, with a warning).
   */
  async close(): Promise<void> {
    this.closed = true;
    clearInterval(this.timer);
    await this.last;
    if (this.bridge === '') return;
    const { tries, intervalMs } = this.o.settle ?? SETTLE;
    for (let attempt = 1; ; attempt++) {
      const info = await this.inspect();
      if (info === null) return;
      const endpoints = Object.keys(info.Containers ?? {});
      if (endpoints.length === 0) break;
      if (await this.anyContainerLeft(endpoints)) return;
      if (attempt >= tries) {
        this.o.warn(`the engine still lists endpoints of removed containers on the network "${this.o.name}" after ${tries} looks ${intervalMs} ms apart; its isolation rules go, the network stays (docker network rm ${this.o.name})`, undefined);
        break;
      }
      await new Promise((resolve) => setTimeout(resolve, intervalMs));
    }
    await removeTenantNetwork(this.docker, this.o.name, this.o.hostId, { rules: this.o.policy !== null });
  }

  /**
   * Whether any of the network's endpoints (keyed by container id, or "ep-…" for one whose
   * container the engine no longer knows) belongs to a container that is still there. One the
   * engine cannot answer for counts as there: its rules are kept rather than risked.
   */
  private async anyContainerLeft(endpoints: readonly string[]): Promise<boolean> {
    for (const id of endpoints) {
      try {
        const c = (await this.docker.getContainer(id).inspect()) as { State?: { Status?: string } };
        if (c.State?.Status !== 'removing' && c.State?.Status !== 'dead') return true;
      } catch (err) {
        if ((err as { statusCode?: number }).statusCode !== 404) return true;
      }
    }
    return false;
  }

  /**
   * Writes the whole rule set as it is now. Calls coalesce: one that comes while a write is
   * queued shares it (the queued write reads the facts when it runs, so it includes the change).
   */
  private converge(full = false): Promise<void> {
    if (this.o.policy === null || this.closed) return Promise.resolve();
    this.queuedFull ||= full;
    if (this.queued !== null) return this.queued;
    const policy = this.o.policy;
    const run = this.last.then(async () => {
      this.queued = null;
      const quick = !this.queuedFull;
      this.queuedFull = false;
      await applyRuleset(isolationRules({ name: this.o.name, bridge: this.bridge }, policy, [...this.facts.values()]), { quick });
    });
    this.queued = run;
    this.last = run.catch(() => undefined);
    return run;
  }

  private async inspect(): Promise<NetworkInfo | null> {
    try {
      return (await this.docker.getNetwork(this.o.name).inspect()) as NetworkInfo;
    } catch (err) {
      if ((err as { statusCode?: number }).statusCode === 404) return null;
      throw err;
    }
  }

  private async ensureNetwork(): Promise<NetworkInfo> {
    let info = await this.inspect();
    if (info === null) {
      try {
        await this.docker.createNetwork({
          Name: this.o.name,
          Driver: 'bridge',
          CheckDuplicate: true,
          Labels: { [networkLabels.managed]: 'true', [networkLabels.host]: this.o.hostId },
          Options: { 'com.docker.network.bridge.enable_icc': 'false', 'com.docker.network.bridge.name': bridgeNameOf(this.o.name) },
        });
      } catch (err) {
        // 409: made meanwhile by someone else; the checks below say whether it will do.
        if ((err as { statusCode?: number }).statusCode !== 409) {
          throw new FcError('FC_ERR_CONFIG', `could not make the Docker network "${this.o.name}" (FC_DOCKER_NETWORK): ${(err as Error).message}`, { network: this.o.name }, { cause: err });
        }
      }
      info = await this.inspect();
      if (info === null) throw new FcError('FC_ERR_CONFIG', `the Docker network "${this.o.name}" vanished as it was made`, { network: this.o.name });
    }
    if (info.Driver !== 'bridge') {
      throw new FcError('FC_ERR_CONFIG', `the Docker network "${this.o.name}" (FC_DOCKER_NETWORK) has driver ${info.Driver}; the dispatcher needs a bridge network`, { network: this.o.name });
    }
    const owner = info.Labels?.[networkLabels.host];
    if (owner !== undefined && owner !== this.o.hostId) {
      throw new FcError('FC_ERR_CONFIG', `the Docker network "${this.o.name}" belongs to the dispatcher of host ${owner}; give every dispatcher on one engine a network of its own (FC_DOCKER_NETWORK)`, { network: this.o.name, owner });
    }
    return info;
  }
}

/**
 * Removes the isolation rules of network `name` and, if the dispatcher of `hostId` made it and no
 * container is on it, the network. For a clean stop, and for tests and operators cleaning up after
 * a dispatcher that cannot (killed, or gone for good).
 */
export async function removeTenantNetwork(docker: Docker, name: string, hostId: string, o: { rules?: boolean } = {}): Promise<void> {
  let info: NetworkInfo | null = null;
  try {
    info = (await docker.getNetwork(name).inspect()) as NetworkInfo;
  } catch {
    info = null;
  }
  const bridge = info === null ? bridgeNameOf(name) : info.Options?.['com.docker.network.bridge.name'] ?? `br-${info.Id.slice(0, 12)}`;
  if (o.rules !== false) await removeRuleset(isolationRules({ name, bridge }, { blockedNetworks: [], services: [] }, []));
  if (info !== null && info.Labels?.[networkLabels.managed] === 'true' && info.Labels[networkLabels.host] === hostId && Object.keys(info.Containers ?? {}).length === 0) {
    await docker.getNetwork(name).remove().catch(() => undefined);
  }
}
