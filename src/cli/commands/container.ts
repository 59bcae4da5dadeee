// `fastcontainer container rm ID ...`: removes container entries through the CoreAPI
// (DELETE /v1/containers/:id): one never started goes at once, a running one drains and goes.

import type { ContainerEntry } from '../../cmdb/types.js';
import type { ApiClient } from '../api-client.js';
import { UsageError } from '../usage-error.js';

export async function containerCommand(api: ApiClient, args: readonly string[]): Promise<number> {
  const [sub, ...ids] = args;
  if (sub !== 'rm') throw new UsageError(`container needs rm${sub === undefined ? '' : ` (not "${sub}")`}: container rm ID ...`);
  if (ids.length === 0 || ids.some((id) => id === '')) throw new UsageError('container rm needs one or more container ids (as `fastcontainer ps` shows them)');
  for (const id of ids) {
    const entry = await api.call<ContainerEntry>('DELETE', `/v1/containers/${encodeURIComponent(id)}`);
    process.stdout.write(entry.state === 'gone' ? `container ${id} removed (it had not started)\n` : `container ${id} of app ${entry.app} draining: in-flight requests finish, then it is removed\n`);
  }
  return 0;
}
