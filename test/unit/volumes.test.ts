// The dispatcher's check of volumes on real files: symbolic links, missing paths, sockets.
// And the decision of which user a container runs as.

import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync, existsSync, realpathSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveVolumes } from '../../src/dispatcher/volumes.js';
import { containerUser, isRootAllowed, NOBODY } from '../../src/dispatcher/runtime/image-user.js';
import { FcError } from '../../src/shared/errors.js';
import { tooDeep } from '../../src/shared/http.js';
import { parseVolumeRoots } from '../../src/shared/volumes.js';

let dir: string;
let pool: string;
let server: net.Server | undefined;

beforeAll(async () => {
  dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'fctest-volumes-')));
  pool = path.join(dir, 'pool');
  mkdirSync(path.join(pool, 'blog', 'site', 'inner'), { recursive: true });
  mkdirSync(path.join(pool, 'shop', 'db'), { recursive: true });
  writeFileSync(path.join(pool, 'blog', 'config.ini'), 'x=1');
  // Links a tenant's code could make inside its own directory.
  symlinkSync('/', path.join(pool, 'blog', 'to-root'));
  symlinkSync('/etc', path.join(pool, 'blog', 'site', 'to-etc'));
  symlinkSync(path.join(pool, 'shop'), path.join(pool, 'blog', 'to-shop'));
  symlinkSync('../../shop/db', path.join(pool, 'blog', 'site', 'relative-to-shop'));
  symlinkSync('inner', path.join(pool, 'blog', 'site', 'to-inner'));
  server = net.createServer();
  await new Promise<void>((resolve) => server!.listen(path.join(pool, 'blog', 'sock'), resolve));
});

afterAll(async () => {
  await new Promise<void>((resolve) => (server ? server.close(() => resolve()) : resolve()));
  rmSync(dir, { recursive: true, force: true });
});

async function refusal(volumes: string[], roots = [`${dir}/pool/{app}`]): Promise<FcError> {
  try {
    await resolveVolumes('blog', volumes, roots);
  } catch (err) {
    if (err instanceof FcError) return err;
    throw err;
  }
  throw new Error('expected a refusal');
}

describe('resolveVolumes (at the dispatcher, on the host of the mount)', () => {
  it('gives the resolved paths of volumes under the app\'s root', async () => {
    const roots = [`${dir}/pool/{app}`];
    expect(await resolveVolumes('blog', [`${pool}/blog/site:/var/www/html:ro`, `${pool}/blog/config.ini:/etc/app.ini`], roots))
      .toEqual([`${pool}/blog/site:/var/www/html:ro`, `${pool}/blog/config.ini:/etc/app.ini:rw`]);
    // A link that stays inside is followed, and the engine is given where it leads.
    expect(await resolveVolumes('blog', [`${pool}/blog/site/to-inner:/data`], roots)).toEqual([`${pool}/blog/site/inner:/data:rw`]);
  });

  it.each([
    ['a link to /', 'to-root', 'outside'],
    ['a link to /etc', 'site/to-etc', 'outside'],
    ["a link to another tenant's directory", 'to-shop', 'outside'],
    ["a relative link to another tenant's directory", 'site/relative-to-shop', 'outside'],
    ['a path that does not exist', 'missing', 'does not exist'],
    ['a socket', 'sock', 'neither a directory nor a regular file'],
  ])('refuses %s', async (_what, rel, why) => {
    const err = await refusal([`${pool}/blog/${rel}:/data`]);
    expect(err.code).toBe('FC_ERR_VOLUME_REFUSED');
    expect(err.message).toContain(why);
  });

  it('never creates a missing path', async () => {
    await refusal([`${pool}/blog/new-dir:/data`]);
    expect(existsSync(`${pool}/blog/new-dir`)).toBe(false);
  });

  it("refuses another tenant's directory, paths outside every root, and a missing root", async () => {
    expect((await refusal([`${pool}/shop/db:/data`])).message).toContain('not under a volume root');
    expect((await refusal(['/etc:/etc2'])).message).toContain('not under a volume root');
    expect((await refusal(['/var/run/docker.sock:/var/run/docker.sock'])).message).toContain('not under a volume root');
    expect((await refusal([`${dir}/nowhere/blog/x:/data`], [`${dir}/nowhere/{app}`])).message).toContain('volume root');
    expect((await refusal([`${pool}/blog:/data`], [])).message).toContain('allows no volumes');
  });

  it('checks again what the CoreAPI checked (an app written before the rules, or by another CoreAPI)', async () => {
    expect((await refusal(['/:/host:rw'])).code).toBe('FC_ERR_VOLUME_REFUSED');
    expect((await refusal([`${pool}/blog/../shop:/data`])).message).toContain('not "/host/path');
  });
});

describe('FC_VOLUME_ROOTS', () => {
  it.each([
    ['/srv/pool/{app}', ['/srv/pool/{app}']], ['/a, /b/{app}/sites', ['/a', '/b/{app}/sites']], ['none', []],
    ['/', undefined], ['relative', undefined], ['/a/../b', undefined], ['/a/{app}x', undefined], ['/{app}/{app}', undefined], ['', undefined], ['/a/', undefined],
  ] as const)('%j', (raw, want) => {
    expect(parseVolumeRoots(raw)).toEqual(want);
  });
});

describe('containerUser: never root unless the operator allows it for the image', () => {
  const none: string[] = [];
  it.each([
    ['an image user by name', { appUser: null, imageUser: 'www-data', image: 'fastcontainer/php', rootImages: none }, undefined],
    ['a numeric image user', { appUser: null, imageUser: '65534:65534', image: 'fastcontainer/hello', rootImages: none }, undefined],
    ['an image without a user', { appUser: null, imageUser: '', image: 'nginx', rootImages: none }, NOBODY],
    ['an image user root', { appUser: null, imageUser: 'root', image: 'nginx:1.25', rootImages: none }, NOBODY],
    ['an image user 0:0', { appUser: null, imageUser: '0:0', image: 'x', rootImages: none }, NOBODY],
    ['an image user in group root', { appUser: null, imageUser: '33:0', image: 'x', rootImages: none }, '33:65534'],
    ['a root image the operator allows', { appUser: null, imageUser: '', image: 'nginx', rootImages: ['nginx:latest'] }, undefined],
    ['a root image allowed by another tag only', { appUser: null, imageUser: '', image: 'nginx:1.25', rootImages: ['nginx'] }, NOBODY],
    ["the app's user", { appUser: '1000', imageUser: '', image: 'x', rootImages: none }, '1000:1000'],
    ["the app's user and group", { appUser: '1000:50', imageUser: 'www-data', image: 'x', rootImages: none }, '1000:50'],
  ] as const)('%s', (_what, input, want) => {
    expect(containerUser(input)).toBe(want);
  });
  it('reads a missing tag as :latest', () => {
    expect(isRootAllowed('repo/app', ['repo/app:latest'])).toBe(true);
    expect(isRootAllowed('registry:5000/app', ['registry:5000/app:latest'])).toBe(true);
    expect(isRootAllowed('repo/app:2', ['repo/app'])).toBe(false);
  });
});

describe('tooDeep', () => {
  it('names where a value nests too deep, without recursion', () => {
    let deep: unknown = 1;
    for (let i = 0; i < 100_000; i++) deep = [deep];
    expect(tooDeep({ env: deep })).toMatch(/^env\.0\.0\.0/);
    expect(tooDeep({ a: { b: { c: 1 } }, list: [1, 2, [3]] })).toBeUndefined();
  });
});
