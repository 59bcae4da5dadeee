// The Docker engine as the chaos run sees it: the app containers of its clusters' hosts (found by
// the host label the dispatchers put on them), and containers and networks of its own (a fake
// metadata service, an "internet" server), labelled fastcontainer.chaos=<run id> so that exactly
// those are removed.

import { execFile } from 'node:child_process';
import { existsSync } from 'node:fs';
import path from 'node:path';
import { promisify } from 'node:util';
import Docker from 'dockerode';

export const docker = new Docker({ socketPath: process.env.DOCKER_SOCKET ?? '/var/run/docker.sock' });
export const CHAOS_LABEL = 'fastcontainer.chaos';

export interface DockerContainer {
  id: string;
  app: string;
  host: string;
  entryId: string;
  running: boolean;
}

/** App containers (sandboxes left out) labelled with one of `hostIds`. */
export async function appContainers(hostIds: string[]): Promise<DockerContainer[]> {
  const out: DockerContainer[] = [];
  for (const h of hostIds) {
    for (const c of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.host=${h}`] } })) {
      if (c.Labels['fastcontainer.role'] === 'sandbox') continue;
      out.push({ id: c.Id, app: c.Labels['fastcontainer.app'] ?? '', host: h, entryId: c.Labels['fastcontainer.container'] ?? '', running: c.State === 'running' });
    }
  }
  return out;
}

export async function removeByLabel(label: string): Promise<void> {
  for (const c of await docker.listContainers({ all: true, filters: { label: [label] } })) {
    await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  }
}

export async function removeOwnNetworks(runId: string): Promise<void> {
  for (const n of await docker.listNetworks({ filters: { label: [`${CHAOS_LABEL}=${runId}`] } })) {
    await docker.getNetwork(n.Id).remove().catch(() => undefined);
  }
}

/** Runs argv in a container; exit code and output (stdout and stderr), bounded by `timeoutMs`. */
export async function exec(id: string, argv: string[], timeoutMs = 10_000): Promise<{ code: number | null; output: string }> {
  const e = await docker.getContainer(id).exec({ Cmd: argv, AttachStdout: true, AttachStderr: true });
  const stream = await e.start({ hijack: true, stdin: false });
  let output = '';
  stream.on('data', (d: Buffer) => (output += d.toString('latin1')));
  const ended = new Promise<void>((resolve) => {
    stream.on('end', () => resolve());
    stream.on('close', () => resolve());
  });
  const timer = new Promise<'timeout'>((resolve) => setTimeout(() => resolve('timeout'), timeoutMs));
  if ((await Promise.race([ended, timer])) === 'timeout') {
    stream.destroy();
    return { code: null, output };
  }
  // Multiplexed frames carry an 8-byte header each; the text around them is what matters here.
  output = output.replace(/[\x00-\x08]/g, '');
  const info = await e.inspect();
  return { code: info.ExitCode ?? null, output };
}

/** The container's log (stdout and stderr) as text. */
export async function logsOf(id: string): Promise<string> {
  try {
    const buf = (await docker.getContainer(id).logs({ stdout: true, stderr: true, follow: false })) as unknown as Buffer;
    return buf.toString('latin1');
  } catch {
    return '';
  }
}

/** How many requests the app in the container executed (its CGI's CHAOS-EXEC lines). */
export async function executions(id: string, pathPart: string): Promise<number> {
  return (await logsOf(id)).split('\n').filter((l) => l.includes('CHAOS-EXEC') && l.includes(pathPart)).length;
}

/** The host name the app inside sees (the hello image's whoami answers it): its sandbox's when it joined one. */
export async function hostnameOf(id: string): Promise<string> {
  const info = await docker.getContainer(id).inspect();
  const mode = info.HostConfig.NetworkMode ?? '';
  if (mode.startsWith('container:')) return hostnameOf(mode.slice('container:'.length));
  return info.Config.Hostname;
}

export async function ipOf(id: string): Promise<string | null> {
  const info = await docker.getContainer(id).inspect();
  for (const n of Object.values(info.NetworkSettings.Networks ?? {})) if (n.IPAddress) return n.IPAddress;
  // An app container in a sandbox's network namespace has its address on the sandbox.
  const mode = info.HostConfig.NetworkMode ?? '';
  if (mode.startsWith('container:')) return ipOf(mode.slice('container:'.length));
  return null;
}

/**
 * The tenant networks (and their isolation rules) of a build that makes them: a dispatcher keeps
 * them while containers remain, which they do once it is killed or leaves them for the next one
 * (Redis). After the host's containers are gone, the build's own scripts/remove-tenant-network.mjs
 * removes each network labelled with the host, and only if that host's dispatcher made it.
 */
export async function removeTenantNetworks(bin: string, hostIds: string[]): Promise<void> {
  const script = path.resolve(path.dirname(bin), '../scripts/remove-tenant-network.mjs');
  for (const h of hostIds) {
    const nets = await docker.listNetworks({ filters: { label: [`fastcontainer.host=${h}`] } });
    for (const n of nets) {
      if (existsSync(script)) {
        await promisify(execFile)(process.execPath, [script, n.Name, h], { timeout: 30_000 }).catch((err: Error) => {
          process.stderr.write(`[chaos] could not remove network ${n.Name}: ${err.message}\n`);
        });
      } else {
        await docker.getNetwork(n.Id).remove().catch(() => undefined);
      }
    }
  }
}
