// A GET whose PHP worker dies after it produced its response headers is executed once (issue 8):
// the proxy and the dispatcher in separate stacks (the HTTP hop between them, as on a cluster),
// the real Redis, the real Docker engine and the fastcontainer/php image. The script counts its
// executions in a file of a mounted directory.

import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { imageExists } from '../helpers/docker.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

const PHP = 'fastcontainer/php';

let backend: TestStack;
let front: TestStack;
let site: string;

beforeAll(async () => {
  if (!(await imageExists(PHP))) throw new Error(`image ${PHP} is missing; run \`bash scripts/setup.sh\` first`);
  backend = await startTestStack({ roles: ['coreapi', 'dispatcher'] });
  front = await startTestStack({ roles: ['proxy'], prefix: backend.prefix });
  site = mkdtempSync(path.join(os.tmpdir(), 'fctest-dies-'));
  writeFileSync(path.join(site, 'index.php'), '<?php echo "alive";');
  // Counts, sends its headers, and dies (SIGKILL of the Apache worker) before any body.
  writeFileSync(path.join(site, 'die.php'), [
    '<?php',
    'file_put_contents(__DIR__ . "/runs/count", "x", FILE_APPEND | LOCK_EX);',
    'header("X-Began: yes");',
    'flush();',
    'posix_kill(getmypid(), 9);',
  ].join('\n'));
  for (const f of ['index.php', 'die.php']) chmodSync(path.join(site, f), 0o644);
  chmodSync(site, 0o755);
  // Writable by the container's unprivileged user.
  const runs = path.join(site, 'runs');
  mkdirSync(runs);
  chmodSync(runs, 0o777);
  const created = await backend.api('POST', '/v1/apps', { name: 'dies', hostnames: ['dies.test'], image: PHP, volumes: [`${site}:/var/www/html`] });
  expect(created.status, JSON.stringify(created.body)).toBe(201);
});

afterAll(async () => {
  await front?.cleanup();
  await backend?.cleanup();
  if (site !== undefined) rmSync(site, { recursive: true, force: true });
});

describe('a GET whose worker dies mid-request', () => {
  it('is executed exactly once, and the client gets a clean 502', async () => {
    // Warm: the container is up and answers.
    const warm = await front.get('dies.test', '/');
    expect(warm.status, warm.body).toBe(200);
    expect(warm.body).toBe('alive');
    const res = await front.get('dies.test', '/die.php');
    expect(res.status).toBe(502);
    expect(JSON.parse(res.body).code).toBe('FC_ERR_UPSTREAM');
    const count = path.join(site, 'runs', 'count');
    expect(existsSync(count)).toBe(true);
    expect(readFileSync(count, 'utf8')).toBe('x');
    // The container still serves: Apache replaced its worker.
    expect((await front.get('dies.test', '/')).status).toBe(200);
  });
});
