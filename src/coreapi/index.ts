// The CoreAPI role: the control plane's REST API and the only writer of app specs. See api.ts.

import type { Registry } from 'prom-client';
import type { Store } from '../cmdb/types.js';
import { resolveApiToken, type ApiToken } from '../shared/api-token.js';
import type { Clock } from '../shared/clock.js';
import type { Config } from '../shared/config.js';
import { listen, type Listening } from '../shared/http.js';
import type { Logger } from '../shared/logger.js';
import { createRegistry } from '../shared/metrics.js';
import { CoreApi } from './api.js';

export { CoreApi } from './api.js';
export { parseAppPatch, parseNewApp, parseMemory } from './app-spec.js';

export interface CoreApiRole {
  api: CoreApi;
  registry: Registry;
  listening: Listening;
  token: ApiToken;
  readToken: ApiToken;
  close(): Promise<void>;
  destroy(): Promise<void>;
}

export async function startCoreApi(
  config: Pick<Config, 'apiPort' | 'apiListen' | 'apiToken' | 'apiReadToken' | 'stateDir' | 'hostTimeout' | 'volumeRoots' | 'drainTimeout' | 'apiStreams' | 'logLines' | 'usageRetention'>,
  deps: { store: Store; clock: Clock; logger: Logger },
): Promise<CoreApiRole> {
  const logger = deps.logger.child({ role: 'coreapi' });
  const token = resolveApiToken(config.apiToken, config.stateDir);
  const readToken = resolveApiToken(config.apiReadToken, config.stateDir, 'read');
  const registry = createRegistry('coreapi');
  const api = new CoreApi(
    { ...deps, logger, registry },
    { token: token.token, readToken: readToken.token, hostTimeout: config.hostTimeout, volumeRoots: config.volumeRoots, streams: config.apiStreams, logLines: config.logLines, usageRetention: config.usageRetention },
  );
  const listening = await listen(api.handle, config.apiPort, config.apiListen, { drainTimeout: config.drainTimeout });
  api.dashboard.start();
  logger.info({ url: listening.url, token: token.source, readToken: readToken.source }, 'CoreAPI listening');
  // The dashboard's streams and the log follows never end by themselves: they are ended first, so
  // a drain can finish.
  const endStreams = async () => {
    api.logs.close();
    await api.dashboard.close();
  };
  return {
    api, registry, listening, token, readToken,
    close: async () => { await endStreams(); await listening.close(); },
    destroy: async () => { await endStreams(); await listening.destroy(); },
  };
}
