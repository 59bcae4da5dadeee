// A dispatcher that dies and comes back leaves no orphan: it adopts the containers the CMDB still
// wants and removes the rest. The dispatcher runs as its own process (`fastcontainer dispatcher`,
// the built CLI) so that it can be killed for real; proxy and CoreAPI run in the test process.

import { spawn, type ChildProcess } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';
import { containersOfHost, docker } from '../helpers/docker.js';
import { redisUrl, uniqueName } from '../helpers/env.js';
import { freePort } from '../helpers/net.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/fastcontainer.js');

let t: TestStack;
const hostId = uniqueName('fctest-host');
let port: number;
let child: ChildProcess | undefined;
let output = '';

function startDispatcherProcess(): ChildProcess {
  const p = spawn(process.execPath, [bin, 'dispatcher'], {
    env: {
      ...process.env,
      REDIS_URL: redisUrl,
      FC_REDIS_PREFIX: t.prefix,
      FC_HOST_ID: hostId,
      FC_LISTEN_HOST: '127.0.0.1',
      FC_DISPATCHER_PORT: String(port),
      FC_ADMIN_PORT: '0',
      FC_HEARTBEAT_INTERVAL: '200ms',
      FC_LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  p.stdout?.on('data', (d: Buffer) => (output += d.toString()));
  p.stderr?.on('data', (d: Buffer) => (output += d.toString()));
  return p;
}

async function hostHeartbeat(): Promise<number> {
  const hosts = await t.api('GET', '/v1/hosts');
  return (hosts.body.hosts as { id: string; heartbeatAt: number }[]).find((h) => h.id === hostId)?.heartbeatAt ?? 0;
}

async function waitForExit(p: ChildProcess): Promise<number | null> {
  if (p.exitCode !== null || p.signalCode !== null) return p.exitCode;
  return new Promise((resolve) => p.once('exit', (code) => resolve(code)));
}

beforeAll(async () => {
  t = await startTestStack({ roles: ['coreapi', 'proxy'] });
  port = await freePort();
});

afterAll(async () => {
  if (child !== undefined && child.exitCode === null && child.signalCode === null) {
    child.kill('SIGKILL');
    await waitForExit(child);
  }
  await t?.cleanup();
  const leftovers = await containersOfHost(hostId);
  for (const c of leftovers) await docker.getContainer(c.Id).remove({ force: true });
  // Killed with SIGKILL, its dispatcher left its network and isolation rules.
  await removeTenantNetwork(docker, `fc-${hostId}`, hostId);
});

describe('dispatcher restart', () => {
  it('adopts what the CMDB still wants and removes every other container of its host', async () => {
    child = startDispatcherProcess();
    await eventually(async () => (await hostHeartbeat()) > 0, { timeout: 20_000, what: `the dispatcher to register (output: ${output})` });
    for (const name of ['keep', 'drop']) {
      const res = await t.api('POST', '/v1/apps', { name, hostnames: [`${name}.test`], image: 'fastcontainer/hello' });
      expect(res.status).toBe(201);
    }
    const keepBefore = await t.get('keep.test', '/cgi-bin/whoami');
    expect(keepBefore.status).toBe(200);
    expect((await t.get('drop.test')).status).toBe(200);
    // A container of this host that no entry wants, as a crash between create and CMDB write leaves.
    const stray = await docker.createContainer({
      Image: 'fastcontainer/hello',
      Labels: { [labelKeys.managed]: 'true', [labelKeys.host]: hostId, [labelKeys.app]: 'ghost', [labelKeys.container]: 'ghost-0' },
    });
    await stray.start();
    const before = await containersOfHost(hostId, { all: false });
    expect(before).toHaveLength(3);
    const keepId = before.find((c) => c.Labels[labelKeys.app] === 'keep')?.Id;

    child.kill('SIGKILL');
    await waitForExit(child);
    // While the dispatcher is down, the drop app is deleted: its container is now unwanted.
    expect((await t.api('DELETE', '/v1/apps/drop')).status).toBe(200);
    const downAt = Date.now();

    child = startDispatcherProcess();
    await eventually(async () => (await hostHeartbeat()) > downAt, { timeout: 20_000, what: 'the restarted dispatcher to heartbeat' });

    const after = await containersOfHost(hostId);
    expect(after.map((c) => c.Labels[labelKeys.app])).toEqual(['keep']);
    expect(after[0]?.Id).toBe(keepId);
    const entries = await t.api('GET', '/v1/containers');
    expect(entries.body.containers.map((c: { app: string; state: string }) => `${c.app}:${c.state}`)).toEqual(['keep:ready']);
    // Adopted, not restarted: the same container answers.
    const keepAfter = await t.get('keep.test', '/cgi-bin/whoami');
    expect(keepAfter.status).toBe(200);
    expect(keepAfter.body).toBe(keepBefore.body);
    expect(output).toContain('adopted running container');
    expect(output).toContain('removing orphan container');
  });

  it('leaves its containers running on a graceful stop, for the next start to adopt', async () => {
    expect(child).toBeDefined();
    child?.kill('SIGTERM');
    expect(await waitForExit(child as ChildProcess)).toBe(0);
    const running = await containersOfHost(hostId, { all: false });
    expect(running.map((c) => c.Labels[labelKeys.app])).toEqual(['keep']);
  });
});
