// The dispatcher role, one per compute host: starts containers on demand, holds requests until
// they listen, forwards, recycles containers at the end of their lifespan. See dispatcher.ts.

import type { Registry } from 'prom-client';
import type { CmdbCache } from '../cmdb/cache.js';
import { registerCmdbMetrics } from '../cmdb/cache-metrics.js';
import type { Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import type { HopAuth } from '../shared/hop-auth.js';
import { listen, type Listening } from '../shared/http.js';
import { DISPATCHER_MAX_HEADERS } from '../shared/protocol.js';
import type { Logger } from '../shared/logger.js';
import { createRegistry } from '../shared/metrics.js';
import type { ContainerRuntime } from './container-runtime.js';
import { Dispatcher } from './dispatcher.js';
import { hopGate, hopGateUpgrade } from './hop-gate.js';
import { labelKeys } from './container-runtime.js';
import { DockerRuntime } from './runtime/docker-runtime.js';

export { Dispatcher } from './dispatcher.js';
export type { ContainerRuntime } from './container-runtime.js';
export { labelKeys } from './container-runtime.js';
export { DockerRuntime } from './runtime/docker-runtime.js';

export type DispatcherConfig = Pick<
  Config,
  | 'dispatcherPort' | 'dispatcherListen' | 'hostId' | 'dispatcherUrl' | 'hostCapacity' | 'heartbeatInterval' | 'startTimeout'
  | 'readyPollInterval' | 'startBackoff' | 'queueLimit' | 'queueTimeout' | 'drainTimeout' | 'drainGrace' | 'stopTimeout'
  | 'reconcileInterval' | 'pidsLimit' | 'containerConnections' | 'dockerHost' | 'dockerNetwork' | 'hostTimeout'
  | 'sandboxPool' | 'sandboxImage' | 'volumeRoots' | 'rootImages' | 'upstreamTimeout' | 'networkIsolation' | 'blockedNetworks' | 'tenantServices' | 'upgradeIdleTimeout'
  | 'usageInterval' | 'usageRetention' | 'logLines' | 'logLineBytes' | 'logRate' | 'bufferAnswer' | 'bufferAnswerTotal' | 'sendTimeout'
>;

export interface DispatcherRole {
  dispatcher: Dispatcher;
  registry: Registry;
  listening: Listening;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startDispatcher(
  config: DispatcherConfig,
  deps: { store: Store; cache: CmdbCache; clock: Clock; logger: Logger; hopAuth: HopAuth; runtime?: ContainerRuntime },
): Promise<DispatcherRole> {
  const logger = deps.logger.child({ role: 'dispatcher' });
  const runtime = deps.runtime ?? new DockerRuntime({
    dockerHost: config.dockerHost,
    network: config.dockerNetwork,
    rootImages: config.rootImages,
    sandboxes: {
      size: config.sandboxPool,
      image: config.sandboxImage,
      labels: { [labelKeys.managed]: 'true', [labelKeys.host]: config.hostId },
      warn: (message, err) => logger.warn({ err }, message),
    },
    isolation: {
      hostId: config.hostId,
      policy: config.networkIsolation ? { blockedNetworks: config.blockedNetworks, services: config.tenantServices } : null,
    },
  });
  const registry = createRegistry('dispatcher');
  registerCmdbMetrics(registry, deps.cache);
  const dispatcher = new Dispatcher({ ...deps, runtime, logger, registry }, config);
  await dispatcher.prepare();
  let listening: Listening;
  try {
    // Only requests a proxy signed get past the gate; nothing else is served on this port.
    const gateDeps = { auth: deps.hopAuth, clock: deps.clock, logger, rejected: dispatcher.metrics.refused, maxHeaders: DISPATCHER_MAX_HEADERS };
    const gate = hopGate(gateDeps, dispatcher.serveProxied);
    listening = await listen(gate, config.dispatcherPort, config.dispatcherListen, {
      maxHeadersCount: DISPATCHER_MAX_HEADERS, drainTimeout: config.drainTimeout,
      // WebSockets pass the same gate; at the end of a shutdown's drain they are closed with 1001.
      onUpgrade: hopGateUpgrade(gateDeps, dispatcher.serveProxiedUpgrade), beforeCut: () => dispatcher.goingAway(),
    });
    // With port 0 (any free port) the URL to advertise is known only now.
    const advertised = new URL(config.dispatcherUrl);
    if (advertised.port === '0') advertised.port = String(listening.port);
    await dispatcher.start(advertised.origin);
  } catch (err) {
    await dispatcher.close();
    throw err;
  }
  logger.info({ url: listening.url, host: config.hostId }, 'dispatcher listening');
  return {
    dispatcher,
    registry,
    listening,
    async close() {
      await listening.close();
      if (deps.store.kind === 'memory') await dispatcher.removeAll();
      await dispatcher.close();
      await runtime.close();
    },
    async destroy() {
      await listening.destroy();
      await dispatcher.destroy();
      await runtime.close();
    },
  };
}
