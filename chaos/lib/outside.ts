// Stand-ins for the world outside the machine, so that a tenant's outbound traffic is tested
// against servers of this run's only: a network namespace of its own joined to the host by a veth
// pair, holding an "internet" server at an address of the benchmarking range (198.18.0.0/15,
// RFC 2544: never routed on the internet) and a "metadata" server at a link-local address that
// no cloud uses (169.254.77.77), the host routing both to the veth. A container reaches them the
// way it reaches the internet: through the host's forwarding and Docker's masquerading (a server
// on another Docker network would not do: Docker isolates its bridges from each other).
// Needs root and iproute2; busybox httpd serves. remove() undoes all of it.

import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { startProc, type Proc } from './proc.js';

export interface Outside {
  internet: string;
  metadata: string;
  port: number;
  remove(): Promise<void>;
}

const ip = (...args: string[]): string => execFileSync('ip', args, { stdio: ['ignore', 'pipe', 'pipe'] }).toString();

export function netnsName(runId: string): string {
  return `fcchaos-${runId}`;
}

/** Deletes the namespace (and with it the veth pair and its routes) if it is there. */
export function removeNetns(runId: string): void {
  try {
    ip('netns', 'del', netnsName(runId));
  } catch {
    // not there
  }
}

export async function startOutside(runId: string): Promise<Outside> {
  const ns = netnsName(runId);
  const hostIf = `fcc${runId}h`;
  const nsIf = `fcc${runId}n`;
  const third = parseInt(runId.slice(0, 2), 16);
  const hostAddr = `198.18.${third}.1`;
  const internet = `198.18.${third}.2`;
  const metadata = '169.254.77.77';
  const port = 8080;
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcchaos-outside-'));
  writeFileSync(path.join(dir, 'index.html'), 'chaos outside\n');
  let server: Proc | undefined;
  try {
    ip('netns', 'add', ns);
    ip('link', 'add', hostIf, 'type', 'veth', 'peer', 'name', nsIf);
    ip('link', 'set', nsIf, 'netns', ns);
    ip('addr', 'add', `${hostAddr}/30`, 'dev', hostIf);
    ip('link', 'set', hostIf, 'up');
    ip('-n', ns, 'addr', 'add', `${internet}/30`, 'dev', nsIf);
    ip('-n', ns, 'addr', 'add', `${metadata}/32`, 'dev', nsIf);
    ip('-n', ns, 'link', 'set', nsIf, 'up');
    ip('-n', ns, 'link', 'set', 'lo', 'up');
    ip('route', 'add', `${metadata}/32`, 'dev', hostIf);
    server = startProc('outside:httpd', 'ip', ['netns', 'exec', ns, 'busybox', 'httpd', '-f', '-p', String(port), '-h', dir], { PATH: `${process.env.PATH}:/usr/sbin:/sbin` });
  } catch (err) {
    await server?.stop(1000);
    removeNetns(runId);
    rmSync(dir, { recursive: true, force: true });
    throw err;
  }
  return {
    internet,
    metadata,
    port,
    async remove() {
      await server?.stop(1000);
      removeNetns(runId);
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
