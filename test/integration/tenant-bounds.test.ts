// What a tenant's API user asks for is bounded, end to end on Redis and Docker: volumes come only
// from the app's own directory under the volume roots (checked again by the dispatcher on the
// host, links resolved, nothing created), secrets reach the container as env but never a reader,
// and a read-only root file system serves a PHP site.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, realpathSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { containersOfHost, docker, imageExists } from '../helpers/docker.js';
import { appSpec } from '../helpers/specs.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const PHP = 'fastcontainer/php';

let t: TestStack;
let dir: string;
let pool: string;

beforeAll(async () => {
  if (!(await imageExists(PHP))) throw new Error(`image ${PHP} is missing; run \`bash scripts/setup.sh\` first`);
  dir = realpathSync(mkdtempSync(path.join(os.tmpdir(), 'fctest-bounds-')));
  pool = path.join(dir, 'datapool');
  for (const app of ['blog', 'shop']) mkdirSync(path.join(pool, app, 'site'), { recursive: true, mode: 0o755 });
  writeFileSync(path.join(pool, 'blog', 'site', 'index.php'), '<?php echo "blog; password ", getenv("DB_PASSWORD") === "pa55-w0rd" ? "set" : "missing", "; image files ", is_writable("/var/log/apache2") ? "writable" : "read-only", "; tmp ", is_writable("/tmp") ? "writable" : "read-only";');
  writeFileSync(path.join(pool, 'shop', 'site', 'index.php'), '<?php echo "the shop\'s own files";');
  for (const d of [dir, pool]) chmodSync(d, 0o755);
  t = await startTestStack({ env: { FC_VOLUME_ROOTS: `${pool}/{app}` } });
});

afterAll(async () => {
  await t?.cleanup();
  if (dir !== undefined) rmSync(dir, { recursive: true, force: true });
});

const containersOf = async (app: string) => (await containersOfHost(t.hostId)).filter((c) => c.Labels[labelKeys.app] === app);

describe('volumes', () => {
  it("serves a site from the app's own directory, with a secret in its env and a read-only root", async () => {
    const res = await t.api('POST', '/v1/apps', {
      name: 'blog', hostnames: ['blog.test'], image: PHP, volumes: [`${pool}/blog/site:/var/www/html:ro`],
      secrets: { DB_PASSWORD: 'pa55-w0rd' }, readOnlyRootfs: true,
    });
    expect(res.status, JSON.stringify(res.body)).toBe(201);
    expect(JSON.stringify(res.body)).not.toContain('pa55-w0rd');
    const page = await t.get('blog.test');
    // /var/log/apache2 belongs to www-data in the image: only a read-only root keeps it from being written.
    expect(page.body).toBe('blog; password set; image files read-only; tmp writable');
    const [c] = await containersOf('blog');
    const info = await docker.getContainer(c?.Id as string).inspect();
    expect(info.HostConfig.ReadonlyRootfs).toBe(true);
    expect(info.Mounts).toMatchObject([{ Type: 'bind', Source: `${pool}/blog/site`, Destination: '/var/www/html', RW: false }]);
  });

  it("refuses another tenant's directory and anything outside the roots at the API", async () => {
    for (const v of [`${pool}/shop/site:/var/www/html`, '/:/host:rw', '/var/run/docker.sock:/var/run/docker.sock', '/proc:/p', '/etc:/e', `${pool}:/all`]) {
      const res = await t.api('POST', '/v1/apps', { name: 'thief', hostnames: ['thief.test'], image: PHP, volumes: [v] });
      expect([v, res.status, res.body.field]).toEqual([v, 400, 'volumes']);
      expect(res.body.allowed).toContain(`${pool}/thief`);
    }
  });

  // The CoreAPI's check is lexical; a link inside the tenant's own directory passes it. The
  // dispatcher resolves it on the host and refuses before any container exists.
  it.each([
    ["a link to another tenant's site", 'shop', (at: string) => symlinkSync(path.join(pool, 'shop', 'site'), at), 'outside'],
    ['a link to /etc', 'etc', (at: string) => symlinkSync('/etc', at), 'outside'],
    ['a relative link climbing out', 'up', (at: string) => symlinkSync('../shop/site', at), 'outside'],
    ['a path that does not exist', 'missing', () => undefined, 'does not exist'],
  ])('refuses at start %s, creating no container and no directory', async (_what, kind, make, why) => {
    const name = `sneaky-${kind}`;
    mkdirSync(path.join(pool, name), { mode: 0o755 });
    const at = path.join(pool, name, 'site');
    make(at);
    // Stored as a CoreAPI elsewhere (or before these rules) could have written it.
    await t.stack.store.createApp(appSpec({ name, hostnames: [`${name}.test`], image: PHP, volumes: [`${at}:/var/www/html:ro`] }), Date.now());
    const res = await t.get(`${name}.test`);
    expect(res.status).toBe(503);
    expect(res.headers['x-fc-error']).toBe('FC_ERR_VOLUME_REFUSED');
    // The public learns the code and a request id; the operator reads why in the entry's last error.
    expect(res.body).not.toContain(pool);
    const entries = await t.api('GET', `/v1/apps/${name}/containers`);
    expect(JSON.stringify(entries.body)).toContain(why);
    expect(await containersOf(name)).toHaveLength(0);
    if (kind === 'missing') expect(existsSync(at)).toBe(false);
  });
});
