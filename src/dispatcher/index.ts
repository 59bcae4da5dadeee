// The dispatcher role, one per compute host: starts containers on demand, holds requests until
// they listen, forwards, recycles containers at the end of their lifespan. See dispatcher.ts.

import type { CmdbCache } from '../cmdb/cache.js';
import type { Store } from '../cmdb/types.js';
import type { Clock } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import { listen, type Listening } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { createRegistry } from '../shared/metrics.js';
import type { ContainerRuntime } from './container-runtime.js';
import { Dispatcher } from './dispatcher.js';
import { labelKeys } from './container-runtime.js';
import { DockerRuntime } from './runtime/docker-runtime.js';

export { Dispatcher } from './dispatcher.js';
export type { ContainerRuntime } from './container-runtime.js';
export { labelKeys } from './container-runtime.js';
export { DockerRuntime } from './runtime/docker-runtime.js';

export type DispatcherConfig = Pick<
  Config,
  | 'dispatcherPort' | 'listenHost' | 'hostId' | 'dispatcherUrl' | 'hostCapacity' | 'heartbeatInterval' | 'startTimeout'
  | 'readyPollInterval' | 'startBackoff' | 'queueLimit' | 'queueTimeout' | 'drainTimeout' | 'drainGrace' | 'stopTimeout'
  | 'reconcileInterval' | 'pidsLimit' | 'containerConnections' | 'dockerHost' | 'dockerNetwork' | 'hostTimeout'
  | 'sandboxPool' | 'sandboxImage' | 'networkIsolation' | 'blockedNetworks' | 'tenantServices'
>;

export interface DispatcherRole {
  dispatcher: Dispatcher;
  listening: Listening;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startDispatcher(
  config: DispatcherConfig,
  deps: { store: Store; cache: CmdbCache; clock: Clock; logger: Logger; runtime?: ContainerRuntime },
): Promise<DispatcherRole> {
  const logger = deps.logger.child({ role: 'dispatcher' });
  const runtime = deps.runtime ?? new DockerRuntime({
    dockerHost: config.dockerHost,
    network: config.dockerNetwork,
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
  const dispatcher = new Dispatcher({ ...deps, runtime, logger, registry: createRegistry('dispatcher') }, config);
  await dispatcher.prepare();
  let listening: Listening;
  try {
    listening = await listen(dispatcher.handle, config.dispatcherPort, config.listenHost);
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
