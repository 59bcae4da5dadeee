// `fastcontainer up | proxy | dispatcher | coreapi`: runs the roles in this process until a
// signal stops them (the first drains, a second aborts), with the start-up banner and, for
// `up --demo`, the demo site and its app.

import { cpSync, mkdirSync } from 'node:fs';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { tokenPath } from '../shared/api-token.js';
import type { Config } from '../shared/config.js';
import { FcError } from '../shared/errors.js';
import { createLogger } from '../shared/logger.js';
import { withoutPassword } from '../shared/redact.js';
import { APP_PLACEHOLDER, rootsOf } from '../shared/volumes.js';
import { ApiClient, ApiError } from './api-client.js';
import { startStack, type Stack, type StackRole } from './stack.js';

const repoRoot = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '..', '..');

export async function runRoles(config: Config, roles: StackRole[]): Promise<number> {
  const logger = createLogger(config.logLevel);
  // The demo's files are in place before anything starts, and its app registered before the banner
  // says the stack is up: whoever reads the banner finds both.
  const site = config.demo ? demoSite(config) : undefined;
  const stack = await startStack({ config, roles, logger });
  if (site !== undefined && stack.coreapi !== undefined) await ensureDemoApp(stack.coreapi.listening.url, stack.coreapi.token.token, site);
  if (roles.length === 3) printBanner(stack, config);
  await new Promise<void>((resolve) => {
    let stopping = false;
    const stop = (signal: string) => {
      if (stopping) {
        logger.warn({ signal }, 'second signal: stopping at once');
        void stack.destroy().finally(resolve);
        return;
      }
      stopping = true;
      logger.info({ signal }, 'stopping: draining connections (again to force)');
      const began = Date.now();
      void stack.close().finally(() => {
        logger.info({ ms: Date.now() - began }, 'stopped');
        resolve();
      });
    };
    process.on('SIGINT', () => stop('SIGINT'));
    process.on('SIGTERM', () => stop('SIGTERM'));
  });
  return 0;
}

function printBanner(stack: Stack, config: Config): void {
  const lines = [
    '',
    `fastcontainer is up on this host (CMDB: ${config.redisSentinels.length > 0 ? `Redis primary "${config.redisSentinelName}" through ${config.redisSentinels.length} sentinels` : config.redisUrl === '' ? 'embedded, in this process' : `Redis at ${withoutPassword(config.redisUrl)}`})`,
    `  proxy       ${stack.proxy?.listening.url ?? ''}   tenant traffic, routed by Host`,
    ...(stack.proxy?.secure === undefined ? [] : [`  proxy TLS   ${stack.proxy.secure.url}   HTTPS (HTTP/1.1, HTTP/2), certificates from ${config.tlsDir} (${stack.proxy.secure.certs.names.length} loaded)`]),
    `  CoreAPI     ${stack.coreapi?.listening.url ?? ''}   token: ${stack.coreapi?.token.source === 'FC_API_TOKEN' ? 'as set in FC_API_TOKEN' : `in ${stack.coreapi?.token.source ?? tokenPath(config.stateDir)}`}` +
      ` (read-only: ${stack.coreapi?.readToken.source === 'FC_API_READ_TOKEN' ? 'as set in FC_API_READ_TOKEN' : `in ${stack.coreapi?.readToken.source ?? tokenPath(config.stateDir, 'read')}`})`,
    `  dashboard   ${stack.coreapi?.listening.url ?? ''}/   in a browser; log in with either token`,
    `  dispatcher  ${stack.dispatcher?.listening.url ?? ''}   host "${config.hostId}"; serves only requests the proxies sign`,
    `  admin       ${stack.admin?.url ?? ''}   /healthz, /metrics, /v1/containers (operator only)`,
  ];
  if (config.demo) {
    lines.push(`  demo site   curl http://demo.localhost:${stack.proxy?.listening.port ?? config.proxyPort}/`);
  }
  lines.push('Logs are JSON on stdout. Stop with Ctrl-C.', '');
  process.stderr.write(lines.join('\n'));
}

/**
 * The demo site's files, copied from examples/demo-site into the demo app's directory under the
 * first volume root (by default <state dir>/datapool/demo/site): apps mount only from there.
 */
function demoSite(config: Config): string {
  const configured = config.volumeRoots[0];
  if (configured === undefined) throw new FcError('FC_ERR_CONFIG', 'the demo app needs a volume root for its site, and FC_VOLUME_ROOTS is none');
  const root = rootsOf([configured], 'demo')[0] as string;
  // Under a root shared by every app, the demo keeps to a directory named for it all the same.
  const site = configured.split('/').includes(APP_PLACEHOLDER) ? path.join(root, 'site') : path.join(root, 'demo', 'site');
  mkdirSync(config.stateDir, { recursive: true, mode: 0o700 }); // as the API token would make it
  mkdirSync(site, { recursive: true, mode: 0o755 });
  cpSync(path.join(repoRoot, 'examples', 'demo-site'), site, { recursive: true, force: true });
  return site;
}

export function demoSpec(site: string): Record<string, unknown> {
  return {
    name: 'demo',
    hostnames: ['demo.localhost'],
    image: 'fastcontainer/php',
    port: 8080,
    volumes: [`${site}:/var/www/html:ro`],
    cpus: 0.5,
    memory: '256m',
    lifespan: 300,
    minContainers: 0,
    maxContainers: 4,
  };
}

/** Registers the demo app through the CoreAPI, or brings it up to date if it exists. */
async function ensureDemoApp(apiUrl: string, token: string, site: string): Promise<void> {
  const client = new ApiClient(apiUrl, token);
  const spec = demoSpec(site);
  try {
    await client.call('POST', '/v1/apps', spec);
  } catch (err) {
    if (!(err instanceof ApiError) || err.problem.code !== 'FC_ERR_APP_EXISTS') throw err;
    const { name: _name, ...changes } = spec;
    await client.call('PATCH', '/v1/apps/demo', changes);
  }
}
