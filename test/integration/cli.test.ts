// The built `fastcontainer` command: `up --demo` (the README's main job, on free ports) and the
// CoreAPI commands against it.

import { execFile, spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { removeTenantNetwork } from '../../src/dispatcher/runtime/tenant-network.js';
import { containersOfHost, docker, removeContainersOfHost } from '../helpers/docker.js';
import { uniqueName } from '../helpers/env.js';
import { freePort } from '../helpers/net.js';
import { eventually } from '../helpers/wait.js';

const bin = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../bin/fastcontainer.js');
const execFileP = promisify(execFile);
const hostId = uniqueName('fctest-host');
const stateDir = mkdtempSync(path.join(os.tmpdir(), 'fctest-cli-'));
let up: ChildProcess;
let proxyPort = 0;
let apiPort = 0;
let banner = '';

async function cli(...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  return cliWith({}, ...args);
}

/** The command with more environment, e.g. another state directory or only the read token. */
async function cliWith(env: Record<string, string>, ...args: string[]): Promise<{ code: number; stdout: string; stderr: string }> {
  try {
    const { stdout, stderr } = await execFileP(process.execPath, [bin, ...args], {
      env: { ...process.env, FC_API_URL: `http://127.0.0.1:${apiPort}`, FC_STATE_DIR: stateDir, FC_API_TOKEN: '', FC_API_READ_TOKEN: '', ...env },
    });
    return { code: 0, stdout, stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, stdout: e.stdout, stderr: e.stderr };
  }
}

async function get(host: string, p = '/'): Promise<{ status: number; body: string }> {
  const res = await request(`http://127.0.0.1:${proxyPort}${p}`, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

beforeAll(async () => {
  [proxyPort, apiPort] = [await freePort(), await freePort()];
  const dispatcherPort = await freePort();
  up = spawn(process.execPath, [bin, 'up', '--demo', '--proxy-port', String(proxyPort), '--api-port', String(apiPort), '--dispatcher-port', String(dispatcherPort), '--admin-port', '0'], {
    env: { ...process.env, REDIS_URL: '', FC_HOST_ID: hostId, FC_STATE_DIR: stateDir, FC_LISTEN_HOST: '127.0.0.1', FC_LOG_LEVEL: 'warn', FC_API_TOKEN: '' },
    stdio: ['ignore', 'ignore', 'pipe'],
  });
  up.stderr?.on('data', (d: Buffer) => (banner += d.toString()));
  await eventually(() => banner.includes('Stop with Ctrl-C'), { timeout: 20_000, what: `the banner (${banner})` });
});

afterAll(async () => {
  if (up.exitCode === null && up.signalCode === null) {
    up.kill('SIGKILL');
    await new Promise((r) => up.once('exit', r));
  }
  await removeContainersOfHost(hostId);
  await removeTenantNetwork(docker, `fc-${hostId}`, hostId);
  rmSync(stateDir, { recursive: true, force: true });
});

describe('fastcontainer up --demo', () => {
  it('prints where everything is, including the API token', () => {
    expect(banner).toContain(`proxy       http://127.0.0.1:${proxyPort}`);
    expect(banner).toContain(`token: in ${stateDir}/api-token`);
    expect(banner).toContain(`curl http://demo.localhost:${proxyPort}/`);
  });

  it("keeps the demo site in the demo app's directory under the default volume root", async () => {
    expect(existsSync(path.join(stateDir, 'datapool', 'demo', 'site', 'index.php'))).toBe(true);
    const shown = JSON.parse((await cli('app', 'show', 'demo')).stdout) as { volumes: string[] };
    expect(shown.volumes).toEqual([`${path.join(stateDir, 'datapool', 'demo', 'site')}:/var/www/html:ro`]);
  });

  it('serves the demo site from examples/demo-site through a PHP container', async () => {
    const res = await eventually(async () => {
      const r = await get('demo.localhost');
      return r.status === 200 ? r : undefined;
    }, { timeout: 20_000, what: 'the demo page' });
    expect(res.body).toContain('Hello from the FastContainer demo site');
    expect(res.body).toMatch(/rendered by PHP 8\.\d+/);
  });
});

describe('the CoreAPI commands', () => {
  it('creates, lists and removes an app, and shows its containers', async () => {
    const created = await cli('app', 'create', 'cliapp', '--hostname', 'cliapp.test', '--image', 'fastcontainer/hello', '--cpus', '0.25', '--memory', '64m', '--lifespan', '120', '--env', 'A=1');
    expect(created).toMatchObject({ code: 0 });
    expect(created.stdout).toContain('created app cliapp: cliapp.test -> fastcontainer/hello');
    const ls = await cli('app', 'ls');
    expect(ls.stdout).toMatch(/cliapp\s+cliapp\.test\s+fastcontainer\/hello\s+0\.25\s+64m\s+120s\s+0\/4/);
    expect((await get('cliapp.test')).status).toBe(200);
    const ps = await cli('ps', '--app', 'cliapp');
    expect(ps.stdout).toMatch(/CONTAINER\s+APP\s+STATE\s+HOST\s+AGE\s+LEFT/);
    expect(ps.stdout).toMatch(new RegExp(`cliapp-[0-9a-f]{8}\\s+cliapp\\s+ready\\s+${hostId}\\s+\\d+s\\s+1m[0-5]\\ds`));
    const rm = await cli('app', 'rm', 'cliapp');
    expect(rm.code).toBe(0);
    await eventually(async () => (await containersOfHost(hostId)).every((c) => c.Labels['fastcontainer.app'] !== 'cliapp'), { what: 'its container to go' });
  });

  it('says which field is wrong, and exits 1', async () => {
    const bad = await cli('app', 'create', 'bad', '--hostname', 'bad.test', '--image', 'x', '--cpus', 'lots');
    expect(bad.code).toBe(1);
    expect(bad.stderr).toContain('FC_ERR_INVALID_FIELD');
    expect(bad.stderr).toContain('cpus: "lots" is not allowed');
  });

  it('rejects unknown commands and bad options with usage, exit 2', async () => {
    expect((await cli('frobnicate')).code).toBe(2);
    const badPort = await cli('up', '--proxy-port', 'eighty');
    expect(badPort.code).toBe(1);
    expect(badPort.stderr).toContain('--proxy-port="eighty" is not allowed (allowed: integer 0-65535');
    const noRedis = await cli('proxy');
    expect(noRedis.stderr).toContain('REDIS_URL is required');
  });
});

describe('the CLI covers the API', () => {
  it('takes durations with a unit, shows the stored seconds, and names a bad one', async () => {
    const created = await cli('app', 'create', 'clidur', '--hostname', 'clidur.test', '--image', 'fastcontainer/hello', '--lifespan', '10m', '--idle-timeout', '90s', '--latency-target', '2s');
    expect(created, created.stderr).toMatchObject({ code: 0 });
    expect(JSON.parse((await cli('app', 'show', 'clidur')).stdout)).toMatchObject({ lifespan: 600, idleTimeout: 90, latencyTargetMs: 2000 });
    for (const bad of ['10x', '500ms', '90']) {
      const r = await cli('app', 'update', 'clidur', '--lifespan', bad);
      if (bad === '90') {
        // A bare number is the field's unit, seconds.
        expect(r, r.stderr).toMatchObject({ code: 0 });
        continue;
      }
      expect([bad, r.code]).toEqual([bad, 1]);
      expect(r.stderr).toContain(`lifespan: "${bad}" is not allowed (allowed: an integer from 1 to 604800 (seconds), or a duration such as "90s", "5m" or "1h")`);
    }
    expect(JSON.parse((await cli('app', 'show', 'clidur')).stdout).lifespan).toBe(90);
    expect((await cli('app', 'rm', 'clidur')).code).toBe(0);
  });

  it('ps --app of an unknown app is an error, exit 1, not an empty table', async () => {
    const r = await cli('ps', '--app', 'no-such-app');
    expect(r.code).toBe(1);
    expect(r.stderr).toContain('FC_ERR_APP_NOT_FOUND');
    expect(r.stdout).toBe('');
  });

  it('container rm drains a running container and removes it; an unknown id is exit 1; no id is usage, exit 2', async () => {
    expect((await cli('app', 'create', 'clirm', '--hostname', 'clirm.test', '--image', 'fastcontainer/hello')).code).toBe(0);
    expect((await get('clirm.test')).status).toBe(200);
    const id = /^(clirm-[0-9a-f]{8})\s/m.exec((await cli('ps', '--app', 'clirm')).stdout)?.[1];
    expect(id).toBeDefined();
    const rm = await cli('container', 'rm', id as string);
    expect(rm, rm.stderr).toMatchObject({ code: 0, stdout: `container ${id} of app clirm draining: in-flight requests finish, then it is removed\n` });
    await eventually(async () => (await containersOfHost(hostId)).every((c) => c.Labels['fastcontainer.container'] !== id), { what: 'its Docker container to go' });
    // Its entry goes a moment after its Docker container: until then a second rm finds it draining.
    const again = await eventually(async () => {
      const r = await cli('container', 'rm', id as string);
      return r.code === 0 ? undefined : r;
    }, { timeout: 10_000, interval: 200, what: 'a second container rm to find no such container' });
    expect(again.code).toBe(1);
    expect(again.stderr).toContain('FC_ERR_CONTAINER_NOT_FOUND');
    for (const args of [['container'], ['container', 'rm'], ['container', 'frob', 'x']]) expect((await cli(...args)).code, args.join(' ')).toBe(2);
    expect((await cli('app', 'rm', 'clirm')).code).toBe(0);
  });

  it('app update replaces the running container with the real engine, make before break: no failed request', async () => {
    expect((await cli('app', 'create', 'cliroll', '--hostname', 'cliroll.test', '--image', 'fastcontainer/hello', '--min', '1', '--env', 'V=1', '--no-autoscale')).code).toBe(0);
    await eventually(async () => (await get('cliroll.test')).status === 200, { timeout: 20_000, what: 'cliroll to serve' });
    const envOf = async () => {
      const rows = (await containersOfHost(hostId, { all: false })).filter((c) => c.Labels['fastcontainer.app'] === 'cliroll');
      return Promise.all(rows.map(async (c) => (await docker.getContainer(c.Id).inspect()).Config.Env.filter((e) => e.startsWith('V='))));
    };
    expect(await envOf()).toEqual([['V=1']]);
    let running = true;
    const statuses: number[] = [];
    const client = (async () => {
      while (running) statuses.push((await get('cliroll.test')).status);
    })();
    const updated = await cli('app', 'update', 'cliroll', '--env', 'V=2');
    expect(updated, updated.stderr).toMatchObject({ code: 0 });
    await eventually(async () => JSON.stringify(await envOf()) === '[["V=2"]]', { timeout: 30_000, what: 'one container, started with V=2' });
    running = false;
    await client;
    expect(statuses.length).toBeGreaterThan(10);
    expect(statuses.filter((s) => s !== 200)).toEqual([]);
    expect((await cli('events', 'cliroll')).stdout).toMatch(/replace\s+cliroll-\S+\s+\S+\s+the app's spec changed \(app update\)/);
    expect((await cli('app', 'rm', 'cliroll')).code).toBe(0);
  });

  it('prints each command\'s help with its flags and units, exit 0; config names env vars and flags', async () => {
    const help = await cli('app', 'create', '--help');
    expect(help.code).toBe(0);
    expect(help.stdout).toMatch(/--lifespan DURATION\s+lifespan: Seconds a container lives/);
    expect(help.stdout).toContain('--memory SIZE');
    expect((await cli('help', 'container', 'rm')).stdout).toContain('Usage: fastcontainer container rm ID');
    expect((await cli('app', 'update', '--help')).stdout).toMatch(/make before break, one at\s+a time/);
    const config = await cli('config');
    expect(config.code).toBe(0);
    expect(config.stdout).toMatch(/^FC_API_URL\s+--api-url\s+"http:\/\/127\.0\.0\.1:\d+"$/m);
    expect((await cli('app', 'create', '--nope')).code).toBe(2);
  });
});

describe('tokens and secrets', () => {
  it('sets secrets it never shows back, changes them key by key, and refuses relative volumes', async () => {
    const created = await cli('app', 'create', 'clisecret', '--hostname', 'clisecret.test', '--image', 'fastcontainer/hello', '--secret', 'DB_PASSWORD=hunter2-xyz', '--env', 'MODE=prod');
    expect(created, created.stderr).toMatchObject({ code: 0 });
    const shown = await cli('app', 'show', 'clisecret');
    expect(JSON.parse(shown.stdout)).toMatchObject({ env: { MODE: 'prod' }, secretKeys: ['DB_PASSWORD'] });
    expect(shown.stdout).not.toContain('hunter2');
    const updated = await cli('app', 'update', 'clisecret', '--secret', 'API_KEY=k-123', '--unset-secret', 'DB_PASSWORD', '--cpus', '0.25');
    expect(updated, updated.stderr).toMatchObject({
      code: 0,
      stdout: 'updated app clisecret (secrets: API_KEY)\nsecrets changed: running containers are replaced one at a time, each drained once its replacement is ready (`fastcontainer events clisecret` shows it)\n',
    });
    // Live fields replace nothing, and say nothing of it.
    expect(await cli('app', 'update', 'clisecret', '--max', '5')).toMatchObject({ code: 0, stdout: 'updated app clisecret (secrets: API_KEY)\n' });
    expect(JSON.parse((await cli('app', 'show', 'clisecret')).stdout)).toMatchObject({ cpus: 0.25, secretKeys: ['API_KEY'] });
    const relative = await cli('app', 'update', 'clisecret', '--volume', 'site:/var/www/html');
    expect(relative.code).toBe(2);
    expect(relative.stderr).toContain('--volume needs an absolute host path');
    expect((await cli('app', 'rm', 'clisecret')).code).toBe(0);
  });

  // Found: every read answered without a token.
  it('reads with the read token only, cannot write with it, and reads nothing without a token', async () => {
    const elsewhere = mkdtempSync(path.join(os.tmpdir(), 'fctest-cli-reader-'));
    try {
      const readToken = readFileSync(path.join(stateDir, 'api-read-token'), 'utf8').trim();
      const reader = { FC_STATE_DIR: elsewhere, FC_API_READ_TOKEN: readToken };
      for (const args of [['app', 'ls'], ['app', 'show', 'demo'], ['ps'], ['hosts']]) {
        expect(await cliWith(reader, ...args), args.join(' ')).toMatchObject({ code: 0 });
        const none = await cliWith({ FC_STATE_DIR: elsewhere }, ...args);
        expect([args.join(' '), none.code, none.stderr]).toEqual([args.join(' '), 1, expect.stringContaining('FC_ERR_UNAUTHORIZED')]);
      }
      const write = await cliWith(reader, 'app', 'rm', 'demo');
      expect(write.code).toBe(1);
      expect(write.stderr).toContain('FC_ERR_FORBIDDEN');
    } finally {
      rmSync(elsewhere, { recursive: true, force: true });
    }
  });
});

describe('scaling commands', () => {
  it('creates an app with the scaling flags, scales it, shows the load columns and the events', async () => {
    const created = await cli('app', 'create', 'cliscale', '--hostname', 'cliscale.test', '--image', 'fastcontainer/hello', '--cpus', '0.25', '--memory', '64m',
      '--max-cpus', '0.5', '--latency-target', '300', '--idle-timeout', '60', '--no-autoscale');
    expect(created, created.stderr).toMatchObject({ code: 0 });
    const shown = JSON.parse((await cli('app', 'show', 'cliscale')).stdout) as Record<string, unknown>;
    expect(shown).toMatchObject({ maxCpus: 0.5, latencyTargetMs: 300, idleTimeout: 60, autoscale: false });

    const out = await cli('app', 'scale', 'cliscale', '--containers', '2');
    expect(out, out.stderr).toMatchObject({ code: 0 });
    expect(out.stdout).toMatch(/^scaled app cliscale: 2 live containers \(.+\) at 0\.25 cores\n$/);
    const quota = await cli('app', 'scale', 'cliscale', '--cpus', '0.4');
    expect(quota.stdout).toMatch(/scaled app cliscale: 2 live containers .* at 0\.4 cores/);

    // CPU is the quota of the container's latest stats (up to 2 s old) once they are newer than the
    // ask: stats taken before the dispatcher applied it still show 0.25 for a moment.
    const quotaRow = /\s0\.4\s+(-|\d+)\s+(-|\d+ms)\s+(-|\d+%)\s/;
    const ps = await eventually(async () => {
      const r = await cli('ps', '--app', 'cliscale');
      const rows = r.stdout.split('\n').filter((l) => l.startsWith('cliscale-'));
      if (rows.length !== 2 || !rows.every((row) => quotaRow.test(row))) throw new Error(`ps shows:\n${r.stdout}${r.stderr}`);
      return r;
    }, { timeout: 10_000, interval: 250, what: 'ps to show both containers at 0.4 cores' });
    expect(ps.stdout).toMatch(/CONTAINER\s+APP\s+STATE\s+HOST\s+AGE\s+LEFT\s+CPU\s+INFLIGHT\s+P95\s+THROTTLED\s+ADDRESS/);

    const events = await cli('events', 'cliscale', '--limit', '5');
    expect(events, events.stderr).toMatchObject({ code: 0 });
    const lines = events.stdout.trimEnd().split('\n');
    expect(lines[0]).toMatch(/^TIME\s+KIND\s+CONTAINER\s+FROM→TO\s+REASON$/);
    const manual = lines.filter((l) => /\smanual\s/.test(l));
    expect(manual[0]).toMatch(/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\s+manual\s+-\s+0\.25→0\.4\s+asked via the CoreAPI for 0\.4 cores/);
    expect(manual[1]).toMatch(/manual\s+-\s+0→2\s+asked via the CoreAPI for 2 containers/);

    expect((await cli('app', 'scale', 'cliscale', '--containers', '0')).stdout).toContain('scaled app cliscale: no live containers');
    expect((await cli('app', 'rm', 'cliscale')).code).toBe(0);
  });

  it('names the bad field or the unknown app, exit 1; a scale without flags is a usage error, exit 2', async () => {
    await cli('app', 'create', 'clibad', '--hostname', 'clibad.test', '--image', 'fastcontainer/hello');
    const lots = await cli('app', 'scale', 'clibad', '--containers', 'lots');
    expect(lots.code).toBe(1);
    expect(lots.stderr).toContain('containers: "lots" is not allowed');
    const high = await cli('app', 'scale', 'clibad', '--cpus', '99');
    expect(high.stderr).toContain('cpus: 99 is not allowed (allowed: a number of CPU cores from the app\'s cpus (0.5) to its maxCpus (1))');
    const limit = await cli('events', 'clibad', '--limit', '0');
    expect(limit.code).toBe(1);
    expect(limit.stderr).toContain('limit: "0" is not allowed');
    const unknown = await cli('events', 'nope');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('FC_ERR_APP_NOT_FOUND');
    expect((await cli('app', 'scale', 'clibad')).code).toBe(2);
    expect((await cli('events')).code).toBe(2);
    await cli('app', 'rm', 'clibad');
  });
});

describe('host commands', () => {
  it('lists the host, refuses rm of a live host and a drain of the last one, drains with --force and resumes', async () => {
    const ls = await cli('host', 'ls');
    expect(ls, ls.stderr).toMatchObject({ code: 0 });
    expect(ls.stdout).toMatch(/^HOST\s+DISPATCHER\s+CAPACITY\s+LIVE\s+LAST HEARTBEAT\s+DRAINED\s+CONTAINERS\n/);
    expect(ls.stdout).toMatch(new RegExp(`${hostId}\\s+http://\\S+\\s+\\d+\\s+yes\\s+\\d+s ago\\s+-\\s+\\d+`));

    const rm = await cli('host', 'rm', hostId);
    expect(rm.code).toBe(1);
    expect(rm.stderr).toContain('FC_ERR_HOST_LIVE');
    const last = await cli('host', 'drain', hostId);
    expect(last.code).toBe(1);
    expect(last.stderr).toContain('FC_ERR_LAST_HOST');
    const unknown = await cli('host', 'drain', 'no-such-host');
    expect(unknown.code).toBe(1);
    expect(unknown.stderr).toContain('FC_ERR_HOST_NOT_FOUND');

    const drained = await cli('host', 'drain', hostId, '--force');
    expect(drained, drained.stderr).toMatchObject({ code: 0 });
    expect(drained.stdout).toContain(`host ${hostId} drained`);
    expect((await cli('hosts')).stdout).toMatch(new RegExp(`${hostId}\\s.*\\s\\d+s ago\\s+\\d+s ago\\s+\\d+`));
    const resumed = await cli('host', 'resume', hostId);
    expect(resumed, resumed.stderr).toMatchObject({ code: 0, stdout: `host ${hostId} takes new containers again\n` });
    expect((await cli('hosts')).stdout).toMatch(new RegExp(`${hostId}\\s.*\\s\\d+s ago\\s+-\\s+\\d+`));
  });

  it('is a usage error without a subcommand or host id, exit 2', async () => {
    for (const args of [['host'], ['host', 'rm'], ['host', 'frob', 'x'], ['host', 'drain', 'a', 'b']]) {
      expect((await cli(...args)).code, args.join(' ')).toBe(2);
    }
  });
});

describe('stopping', () => {
  it('drains and removes its containers on SIGTERM (the embedded CMDB dies with it)', async () => {
    expect((await containersOfHost(hostId)).length).toBeGreaterThan(0);
    up.kill('SIGTERM');
    const code = await new Promise<number | null>((r) => up.once('exit', (c) => r(c)));
    expect(code).toBe(0);
    expect(await containersOfHost(hostId)).toEqual([]);
  });
});
