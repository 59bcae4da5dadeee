// The fastcontainer/static image (nginx from Debian) on the real Docker engine: it serves a
// tenant's directory, mounted read-only, through the proxy and the dispatcher, under the limits
// the dispatcher sets; and it refuses what a visitor (or a tenant's symlink) should not get:
// path traversal, directory listings, symlinks, dot files, huge URLs.

import { chmodSync, mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { containersOfHost, docker, imageExists, removeContainersOfHost } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const STATIC = 'fastcontainer/static';
const HOST = 'static.test';

let t: TestStack;
let site: string;

/** A request written byte for byte on a socket, so that the path reaches the proxy as given (no client normalises it). */
async function raw(target: string): Promise<{ status: number; headers: string; body: string }> {
  const url = new URL(t.proxyUrl);
  const text = await new Promise<string>((resolve, reject) => {
    const socket = net.connect(Number(url.port), url.hostname);
    let data = '';
    socket.setEncoding('latin1');
    socket.setTimeout(10_000, () => socket.destroy(new Error(`no answer to GET ${target.slice(0, 60)}`)));
    socket.on('data', (d: string) => (data += d));
    socket.on('end', () => resolve(data));
    socket.on('error', reject);
    socket.write(`GET ${target} HTTP/1.1\r\nHost: ${HOST}\r\nConnection: close\r\n\r\n`, 'latin1');
  });
  const split = text.indexOf('\r\n\r\n');
  const head = text.slice(0, split);
  return { status: Number(/^HTTP\/1\.1 (\d{3})/.exec(head)?.[1] ?? 0), headers: head, body: text.slice(split + 4) };
}

function file(rel: string, content: string): void {
  writeFileSync(path.join(site, rel), content);
  chmodSync(path.join(site, rel), 0o644);
}

beforeAll(async () => {
  if (!(await imageExists(STATIC))) throw new Error(`image ${STATIC} is missing; run \`bash scripts/setup.sh\` first`);
  site = mkdtempSync(path.join(os.tmpdir(), 'fctest-static-'));
  chmodSync(site, 0o755);
  file('index.html', '<!doctype html><title>static</title><p>the tenant\'s page</p>\n');
  file('hello.txt', 'hello from the mounted directory\n');
  file('.env', 'SECRET=do-not-serve\n');
  mkdirSync(path.join(site, 'files'), { mode: 0o755 });
  chmodSync(path.join(site, 'files'), 0o755);
  file('files/listed-if-indexes-were-on.txt', 'x\n');
  // Symlinks a tenant could plant: to a file of the container's system, to its root directory,
  // and even to a file inside the site (nginx refuses all of them: disable_symlinks on).
  symlinkSync('/etc/passwd', path.join(site, 'passwd'));
  symlinkSync('/', path.join(site, 'escape'));
  symlinkSync('hello.txt', path.join(site, 'alias.txt'));
  t = await startTestStack();
  const res = await t.api('POST', '/v1/apps', {
    name: 'static', hostnames: [HOST], image: STATIC, volumes: [`${site}:/var/www/html:ro`],
    // Small limits: nginx needs a few MiB and a handful of processes.
    cpus: 0.25, memory: '32m', freezeAfter: 0,
  });
  expect(res.status, JSON.stringify(res.body)).toBe(201);
});

afterAll(async () => {
  if (t !== undefined) await removeContainersOfHost(`${t.hostId}-ro`);
  await t?.cleanup();
  if (site !== undefined) rmSync(site, { recursive: true, force: true });
});

describe('fastcontainer/static through the dispatcher', () => {
  it('serves a file of the mounted directory, as a user other than root, without an access log', async () => {
    const res = await t.get(HOST, '/hello.txt');
    expect(res.status).toBe(200);
    expect(res.body).toBe('hello from the mounted directory\n');
    expect(res.headers['content-type']).toBe('text/plain');
    const index = await t.get(HOST, '/');
    expect(index.status).toBe(200);
    expect(index.body).toContain('the tenant\'s page');
    expect(index.headers['content-type']).toBe('text/html');

    const [c] = (await containersOfHost(t.hostId, { all: false })).filter((x) => x.Labels[labelKeys.app] === 'static');
    expect(c).toBeDefined();
    const container = docker.getContainer(c!.Id);
    const info = await container.inspect();
    expect(info.HostConfig).toMatchObject({ Memory: 32 * 2 ** 20, CpuQuota: 25_000, CapDrop: ['ALL'], PidsLimit: 256 });
    expect(info.Mounts.find((m) => m.Destination === '/var/www/html')).toMatchObject({ RW: false });
    const top = await container.top({ ps_args: '-o pid,user,comm' });
    const users = (top.Processes as string[][]).map((p) => p[(top.Titles as string[]).indexOf('USER')]);
    expect(users.length).toBeGreaterThanOrEqual(2); // the master and at least one worker
    expect(users.every((u) => u === 'www-data')).toBe(true);
    // Errors go to the container's output, requests do not.
    const logs = (await container.logs({ stdout: true, stderr: true })).toString('latin1');
    expect(logs).not.toContain('GET /hello.txt');
  });

  it('redirects a directory without its trailing slash by path alone, not to the container\'s port', async () => {
    const res = await raw('/files');
    expect(res.status).toBe(301);
    expect(res.headers).toMatch(/\r\nlocation: \/files\/\r?$/im);
  });

  it('runs on a read-only root filesystem given a tmpfs /tmp', async () => {
    // Not what the dispatcher does today; an operator may. Labelled as a host of its own (the
    // test's dispatcher would reconcile away a container of its host that has no entry), which
    // afterAll removes whatever happens here.
    const container = await docker.createContainer({
      Image: STATIC,
      Labels: { [labelKeys.host]: `${t.hostId}-ro`, [labelKeys.managed]: 'true' },
      HostConfig: { ReadonlyRootfs: true, Tmpfs: { '/tmp': 'rw,size=8m' }, Binds: [`${site}:/var/www/html:ro`], CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'], Memory: 32 * 2 ** 20, PidsLimit: 64 },
    });
    try {
      await container.start();
      const ip = (await container.inspect()).NetworkSettings.Networks.bridge?.IPAddress;
      const body = await eventually(async () => {
        const res = await fetch(`http://${ip}:8080/hello.txt`);
        return res.status === 200 ? res.text() : undefined;
      }, { timeout: 15_000, what: 'nginx on a read-only root' });
      expect(body).toBe('hello from the mounted directory\n');
    } finally {
      await container.remove({ force: true });
    }
  });
});

describe('fastcontainer/static refuses abuse', () => {
  const leaked = (body: string) => /root:.*:0:0:/.test(body);

  it.each([
    '/../../etc/passwd',
    '/%2e%2e/%2e%2e/etc/passwd',
    '/%2E%2E/%2E%2E/%2E%2E/etc/passwd',
    '/..%2f..%2f..%2fetc%2fpasswd',
    '/files/../../../etc/passwd',
  ])('does not serve a path that climbs out of the site: %s', async (target) => {
    const res = await raw(target);
    expect(leaked(res.body)).toBe(false);
    expect([400, 404]).toContain(res.status);
  });

  it('lists no directory', async () => {
    const res = await raw('/files/');
    expect(res.status).toBe(403);
    expect(res.body).not.toContain('listed-if-indexes-were-on');
  });

  it('follows no symlink, whether it points out of the site or into it', async () => {
    const out = await raw('/passwd');
    expect(out.status).toBe(403);
    expect(leaked(out.body)).toBe(false);
    const dir = await raw('/escape/etc/passwd');
    expect([403, 404]).toContain(dir.status);
    expect(leaked(dir.body)).toBe(false);
    expect((await raw('/alias.txt')).status).toBe(403);
    // The file itself is served: the refusal is the symlink's.
    expect((await raw('/hello.txt')).status).toBe(200);
  });

  it('does not serve dot files', async () => {
    const res = await raw('/.env');
    expect(res.status).toBe(404);
    expect(res.body).not.toContain('do-not-serve');
  });

  it('answers 414 to a URL longer than its 8 KiB request-line buffer', async () => {
    const res = await raw(`/${'a'.repeat(10_000)}`);
    expect(res.status).toBe(414);
  });
});
