// compose/deploy.sh: the roles as containers (fastcontainer/fastcontainer) with Redis, two
// dispatchers and Prometheus, brought up under a project name and ports of the test's own, used
// through the published CoreAPI and proxy, upgraded one role at a time, and destroyed: exactly its
// containers, networks and volumes go. And what it must refuse: tenants reaching the platform,
// unsigned requests to a dispatcher, the API without a token.

import { execFile } from 'node:child_process';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import os from 'node:os';
import path from 'node:path';
import { promisify } from 'node:util';
import { fileURLToPath } from 'node:url';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { docker } from '../helpers/docker.js';
import { freePort } from '../helpers/net.js';
import { dashboardExpressions } from '../helpers/promql.js';
import { eventually } from '../helpers/wait.js';

const run = promisify(execFile);
const repo = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');
const project = `fctest-compose-${Math.random().toString(16).slice(2, 10)}`;
const state = mkdtempSync(path.join(os.tmpdir(), 'fctest-compose-state-'));
const datapool = mkdtempSync(path.join(os.tmpdir(), 'fctest-compose-datapool-'));
// A tenants network of its own (a deployment on the machine keeps the default 10.213.0.0/16).
const tenantSubnet = `10.${200 + Math.floor(Math.random() * 50)}.0.0/16`;
let ports = { proxy: 0, api: 0, prometheus: 0 };
let token = '';

const env = () => ({
  ...process.env,
  FC_COMPOSE_PROJECT: project, FC_COMPOSE_STATE: state, FC_COMPOSE_DATAPOOL: datapool,
  FC_COMPOSE_PROXY_PORT: String(ports.proxy), FC_COMPOSE_API_PORT: String(ports.api), FC_COMPOSE_PROMETHEUS_PORT: String(ports.prometheus),
  FC_COMPOSE_BIND: '127.0.0.1', FC_COMPOSE_MONITORING: '1', FC_COMPOSE_SKIP_SETUP: '1', FC_COMPOSE_TENANT_SUBNET: tenantSubnet,
});
const deploy = (...args: string[]) => run('bash', [path.join(repo, 'compose/deploy.sh'), ...args], { env: env(), timeout: 300_000, maxBuffer: 16 * 1024 * 1024 });

async function api(method: 'GET' | 'POST' | 'DELETE', p: string, body?: unknown, auth = token) {
  const res = await request(`http://127.0.0.1:${ports.api}${p}`, {
    method,
    headers: { ...(auth === '' ? {} : { authorization: `Bearer ${auth}` }), 'content-type': 'application/json' },
    body: body === undefined ? null : JSON.stringify(body),
  });
  const text = await res.body.text();
  return { status: res.statusCode, body: text === '' ? undefined : JSON.parse(text) };
}

async function viaProxy(host: string, p = '/') {
  const res = await request(`http://127.0.0.1:${ports.proxy}${p}`, { headers: { host } });
  return { status: res.statusCode, body: await res.body.text() };
}

/** Tenant containers (and sandboxes) the project's dispatchers started. */
async function tenantContainers() {
  const all = await docker.listContainers({ all: true, filters: { label: [`${labelKeys.managed}=true`] } });
  return all.filter((c) => (c.Labels[labelKeys.host] ?? '').startsWith(`${project}-host-`));
}

/**
 * Runs a one-off container on one of the project's networks and returns what it printed: TCP
 * connections (target -> open, ECONNREFUSED, timeout, ENOTFOUND) or an HTTP GET's status. Labelled
 * as one of the project's hosts' containers, so the teardown removes it even if this test dies.
 */
async function probe(network: string, mode: 'tcp' | 'http', targets: string[]): Promise<Record<string, string>> {
  const script = `
    const net = require('node:net'), http = require('node:http');
    const one = (t) => new Promise((resolve) => {
      if (${JSON.stringify(mode)} === 'http') {
        const r = http.get('http://' + t, { timeout: 2000 }, (res) => { res.resume(); resolve(String(res.statusCode)); });
        r.on('timeout', () => { r.destroy(); resolve('timeout'); });
        r.on('error', (e) => resolve(e.code));
        return;
      }
      const [host, port] = t.split(':');
      const s = net.connect({ host, port: Number(port), timeout: 2000 });
      s.on('connect', () => { s.destroy(); resolve('open'); });
      s.on('timeout', () => { s.destroy(); resolve('timeout'); });
      s.on('error', (e) => resolve(e.code));
    });
    (async () => { const out = {}; for (const t of process.argv.slice(1)) out[t] = await one(t); console.log(JSON.stringify(out)); })();`;
  const { stdout } = await run('docker', [
    'run', '--rm', '--network', network, '--label', `${labelKeys.managed}=true`, '--label', `${labelKeys.host}=${project}-host-probe`,
    '--entrypoint', '/usr/local/bin/node', 'fastcontainer/fastcontainer', '-e', script, ...targets,
  ], { timeout: 60_000 });
  return JSON.parse(stdout.trim().split('\n').pop() as string);
}

beforeAll(async () => {
  ports = { proxy: await freePort(), api: await freePort(), prometheus: await freePort() };
  await deploy('up');
  token = readFileSync(path.join(state, 'fastcontainer.env'), 'utf8').match(/^FC_API_TOKEN=(.+)$/m)![1]!;
}, 360_000);

afterAll(async () => {
  await deploy('destroy').catch((err) => console.error(err));
  for (const c of await tenantContainers()) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
  rmSync(state, { recursive: true, force: true });
  rmSync(datapool, { recursive: true, force: true });
}, 180_000);

describe('the compose deployment', () => {
  it('keeps its secrets in an env file only its owner reads, and the API wants the token', async () => {
    const envFile = path.join(state, 'fastcontainer.env');
    expect((await import('node:fs')).statSync(envFile).mode & 0o777).toBe(0o600);
    expect(readFileSync(envFile, 'utf8')).toMatch(/^FC_CLUSTER_SECRET=.{32,}$/m);
    expect((await api('GET', '/v1/apps', undefined, '')).status).toBe(401);
    expect((await api('GET', '/v1/apps', undefined, 'not-the-token-0123456789')).status).toBe(401);
  });

  it('has both dispatchers as live hosts, reachable by their names on the internal network', async () => {
    const hosts = (await api('GET', '/v1/hosts')).body.hosts as { id: string; live: boolean; dispatcherUrl: string }[];
    expect(hosts.map((h) => `${h.id} ${h.live} ${h.dispatcherUrl}`)).toEqual([
      `${project}-host-1 true http://dispatcher-1.control:8082`,
      `${project}-host-2 true http://dispatcher-2.control:8082`,
    ]);
    // The operator's view: the containers and the hosts, with the token from the env file.
    const { stdout } = await deploy('status');
    for (const service of ['redis', 'coreapi', 'proxy', 'dispatcher-1', 'dispatcher-2', 'prometheus']) expect(stdout).toContain(`${project}_${service}_1`);
    expect(stdout).toContain(`${project}-host-1`);
    expect(stdout).toContain(`${project}-host-2`);
  });

  it('serves an app created through the CoreAPI, its site a host directory of the DataPool', async () => {
    const site = path.join(datapool, 'docs');
    mkdirSync(site);
    chmodSync(site, 0o755);
    writeFileSync(path.join(site, 'index.html'), `<p>served from ${project}</p>\n`, { mode: 0o644 });
    const created = await api('POST', '/v1/apps', { name: 'docs', hostnames: ['docs.test'], image: 'fastcontainer/static', volumes: [`${site}:/var/www/html:ro`] });
    expect(created.status).toBe(201);
    const page = await viaProxy('docs.test');
    expect(page).toEqual({ status: 200, body: `<p>served from ${project}</p>\n` });
    expect((await viaProxy('unknown.test')).status).toBe(404);
    // A volume outside the DataPool is refused by the same rules as everywhere.
    const outside = await api('POST', '/v1/apps', { name: 'escape', hostnames: ['escape.test'], image: 'fastcontainer/static', volumes: ['/etc:/var/www/html:ro'] });
    expect(outside.status).toBe(400);
  });

  it('spreads an app over both dispatchers, and both serve through the one proxy', async () => {
    expect((await api('POST', '/v1/apps', { name: 'spread', hostnames: ['spread.test'], image: 'fastcontainer/hello', maxContainers: 2, autoscale: false })).status).toBe(201);
    expect((await viaProxy('spread.test', '/cgi-bin/whoami')).status).toBe(200);
    expect((await api('POST', '/v1/apps/spread/containers', {})).status).toBe(201);
    const entries = await eventually(async () => {
      const list = (await api('GET', '/v1/apps/spread/containers')).body.containers as { host: string; state: string }[];
      return list.length === 2 && list.every((e) => e.state === 'ready') ? list : undefined;
    }, { timeout: 30_000, what: 'two ready containers' });
    expect(entries.map((e) => e.host).sort()).toEqual([`${project}-host-1`, `${project}-host-2`]);
    const seen = new Set<string>();
    for (let i = 0; i < 40 && seen.size < 2; i++) {
      const r = await viaProxy('spread.test', '/cgi-bin/whoami');
      expect(r.status).toBe(200);
      seen.add(r.body.trim());
    }
    expect(seen.size).toBe(2);
    // `docker ps --filter label=fastcontainer.app=spread` finds the app's containers, one per host
    // (the network sandboxes they joined, if they carry the label, are left out by their role).
    const { stdout: ps } = await run('docker', ['ps', '--filter', `label=${labelKeys.app}=spread`, '--filter', `label=${labelKeys.host}`, '--format', '{{.Label "fastcontainer.host"}} {{.Label "fastcontainer.role"}}']);
    expect(ps.trim().split('\n').filter((l) => l.startsWith(project) && !l.endsWith(' sandbox')).map((l) => l.split(' ')[0]).sort()).toEqual([`${project}-host-1`, `${project}-host-2`]);
    // Every tenant container is on the project's tenants network, labelled with its host.
    const containers = await tenantContainers();
    expect(containers.length).toBeGreaterThanOrEqual(3);
    for (const c of containers) expect(Object.keys(c.NetworkSettings.Networks).concat(c.HostConfig.NetworkMode.startsWith('container:') ? [`${project}-tenants`] : [])).toContain(`${project}-tenants`);
  });

  it('a tenant reaches neither the dispatchers\' ports nor Redis, the CoreAPI or the admin listeners', async () => {
    const [d1] = (await docker.listContainers({ filters: { label: [`com.docker.compose.project=${project}`, 'com.docker.compose.service=dispatcher-1'] } }));
    const nets = d1!.NetworkSettings.Networks as Record<string, { IPAddress: string }>;
    const onTenants = nets[`${project}-tenants`]!.IPAddress;
    const onControl = nets[`${project}_control`]!.IPAddress;
    const seen = await probe(`${project}-tenants`, 'tcp', [
      `${onTenants}:8082`, `${onTenants}:8083`, `${onControl}:8082`, `${onControl}:8083`,
      'dispatcher-1.control:8082', 'redis:6379', 'coreapi:8081', 'proxy:8083', 'proxy.control:8083',
    ]);
    expect(seen[`${onTenants}:8082`]).toBe('ECONNREFUSED');
    expect(seen[`${onTenants}:8083`]).toBe('ECONNREFUSED');
    expect(['timeout', 'EHOSTUNREACH', 'ENETUNREACH']).toContain(seen[`${onControl}:8082`]);
    expect(['timeout', 'EHOSTUNREACH', 'ENETUNREACH']).toContain(seen[`${onControl}:8083`]);
    for (const name of ['dispatcher-1.control:8082', 'redis:6379', 'coreapi:8081', 'proxy:8083', 'proxy.control:8083']) expect(seen[name]).toMatch(/^(ENOTFOUND|EAI_AGAIN)$/);
  });

  it('a tenant reaches no other tenant, no address of the host and no metadata address; the dispatchers still reach it', async () => {
    // A listener of the test on every address of the host: the tenants bridge's gateway is one.
    const listener = net.createServer((socket) => socket.end());
    await new Promise<void>((resolve) => listener.listen(0, '0.0.0.0', resolve));
    const hostPort = (listener.address() as net.AddressInfo).port;
    try {
      const sandboxes = (await tenantContainers()).filter((c) => c.Labels['fastcontainer.role'] === 'sandbox');
      const tenantIp = (sandboxes[0]!.NetworkSettings.Networks as Record<string, { IPAddress: string }>)[`${project}-tenants`]!.IPAddress;
      const gateway = tenantSubnet.replace('.0.0/16', '.0.1');
      // From the host the test's listener answers on that address: the refusal below is the rules'.
      expect(await new Promise((resolve) => net.connect({ host: gateway, port: hostPort }).on('connect', function (this: net.Socket) { this.destroy(); resolve('open'); }).on('error', (e: NodeJS.ErrnoException) => resolve(e.code)))).toBe('open');
      const seen = await probe(`${project}-tenants`, 'tcp', [`${tenantIp}:8080`, `${gateway}:${hostPort}`, '169.254.169.254:80']);
      expect(seen).toEqual({ [`${tenantIp}:8080`]: 'ECONNREFUSED', [`${gateway}:${hostPort}`]: 'ECONNREFUSED', '169.254.169.254:80': 'ECONNREFUSED' });
      // The dispatchers still reach their tenants: the apps serve (above, and here once more).
      expect((await viaProxy('spread.test', '/cgi-bin/whoami')).status).toBe(200);
    } finally {
      listener.close();
    }
  });

  it('a dispatcher answers 403 to an unsigned request even from the internal network, where its admin port answers', async () => {
    const seen = await probe(`${project}_control`, 'http', ['dispatcher-1.control:8082/', 'dispatcher-2.control:8082/cgi-bin/whoami', 'dispatcher-1.control:8083/healthz']);
    expect(seen).toEqual({ 'dispatcher-1.control:8082/': '403', 'dispatcher-2.control:8082/cgi-bin/whoami': '403', 'dispatcher-1.control:8083/healthz': '200' });
  });

  it('Prometheus scrapes every role up, and evaluates every query of the Grafana dashboard', async () => {
    const prom = async (p: string) => JSON.parse(await (await request(`http://127.0.0.1:${ports.prometheus}${p}`)).body.text());
    const targets = await eventually(async () => {
      const t = (await prom('/api/v1/targets')).data.activeTargets as { labels: { job: string; instance: string }; health: string }[];
      return t.length === 4 && t.every((x) => x.health === 'up') ? t : undefined;
    }, { timeout: 60_000, interval: 500, what: 'four targets up' });
    expect(targets.map((t) => `${t.labels.job} ${t.labels.instance}`).sort()).toEqual([
      'fastcontainer-coreapi coreapi.control:8083', 'fastcontainer-dispatcher dispatcher-1.control:8083',
      'fastcontainer-dispatcher dispatcher-2.control:8083', 'fastcontainer-proxy proxy.control:8083',
    ]);
    // The requests above are in the proxy's counter as Prometheus sees it.
    await eventually(async () => Number((await prom('/api/v1/query?query=' + encodeURIComponent('sum(fc_proxy_requests_total{app="spread"})'))).data.result[0]?.value[1] ?? 0) >= 2, { timeout: 30_000, interval: 500, what: 'the proxy\'s requests in Prometheus' });
    // The image runs the current code: the CMDB lag the dashboard shows comes from the proxy and both dispatchers.
    const lag = (await prom('/api/v1/query?query=' + encodeURIComponent('fc_cmdb_revision_lag'))).data.result as { metric: { job: string } }[];
    expect(lag.map((r) => r.metric.job).sort()).toEqual(['fastcontainer-dispatcher', 'fastcontainer-dispatcher', 'fastcontainer-proxy']);
    const dashboard = JSON.parse(readFileSync(path.join(repo, 'compose/grafana/fastcontainer.json'), 'utf8'));
    const failed: string[] = [];
    for (const { where, expr } of dashboardExpressions(dashboard)) {
      const q = expr.replaceAll('$__rate_interval', '1m').replaceAll('$app', '.*');
      const r = await prom('/api/v1/query?query=' + encodeURIComponent(q));
      if (r.status !== 'success') failed.push(`${where}: ${r.error}`);
    }
    expect(failed).toEqual([]);
    // A broken query is reported as such (the check above can fail).
    expect((await prom('/api/v1/query?query=' + encodeURIComponent('sum by (app (fc_proxy_requests_total)'))).status).toBe('error');
  });

  it('backs up the CMDB while it serves, and a restore brings back exactly what the snapshot had', async () => {
    const file = path.join(state, 'cmdb.rdb');
    await deploy('backup', file);
    expect(readFileSync(file).subarray(0, 5).toString()).toBe('REDIS');
    expect((await api('POST', '/v1/apps', { name: 'later', hostnames: ['later.test'], image: 'fastcontainer/hello' })).status).toBe(201);
    expect((await viaProxy('later.test', '/cgi-bin/whoami')).status).toBe(200);
    await deploy('restore', file);
    const names = await eventually(async () => {
      const r = await api('GET', '/v1/apps');
      return r.status === 200 ? (r.body.apps as { name: string }[]).map((a) => a.name).sort() : undefined;
    }, { timeout: 30_000, interval: 250, what: 'the CoreAPI after the restore' });
    expect(names).toEqual(['docs', 'spread']);
    // The caches resynced: the app made after the snapshot is unknown at the proxy, the others serve.
    await eventually(async () => (await viaProxy('later.test')).status === 404, { timeout: 30_000, interval: 250, what: 'the proxy to forget the later app' });
    await eventually(async () => (await viaProxy('spread.test', '/cgi-bin/whoami')).status === 200, { timeout: 30_000, interval: 250, what: 'spread served after the restore' });
    // Its container is removed by its dispatcher's reconciliation (no entry claims it any more).
    await eventually(async () => (await tenantContainers()).every((c) => c.Labels[labelKeys.app] !== 'later'), { timeout: 30_000, interval: 250, what: 'the later app\'s container removed' });
    // Not an RDB file: refused before anything is stopped.
    writeFileSync(path.join(state, 'not.rdb'), 'hello');
    await expect(deploy('restore', path.join(state, 'not.rdb'))).rejects.toThrow(/not an RDB file/);
  });

  it('upgrades a dispatcher by recreating it: it adopts its containers, which keep serving', async () => {
    const before = await tenantContainers();
    // A visitor the whole time: spread has a container on each host, so while one dispatcher is
    // being replaced the proxy has the other.
    const statuses = new Map<number | string, number>();
    let rolling = true;
    const visitor = (async () => {
      while (rolling) {
        const r = await viaProxy('spread.test', '/cgi-bin/whoami').catch((e: Error) => ({ status: e.message }));
        statuses.set(r.status, (statuses.get(r.status) ?? 0) + 1);
        await new Promise((resolve) => setTimeout(resolve, 20));
      }
    })();
    try {
      await deploy('roll', 'dispatcher-1', 'dispatcher-2');
    } finally {
      rolling = false;
      await visitor;
    }
    console.log('requests during the roll of both dispatchers, by status:', Object.fromEntries(statuses));
    expect([...statuses.keys()]).toEqual([200]);
    expect(statuses.get(200)).toBeGreaterThan(50);
    for (let i = 0; i < 10; i++) expect((await viaProxy('spread.test', '/cgi-bin/whoami')).status).toBe(200);
    expect((await viaProxy('docs.test')).status).toBe(200);
    const after = await tenantContainers();
    // The app containers are the same ones (adopted, not started anew).
    const apps = (list: typeof before) => list.filter((c) => c.Labels['fastcontainer.role'] !== 'sandbox').map((c) => c.Id).sort();
    expect(apps(after)).toEqual(apps(before));
    await expect(deploy('roll', 'no-such-role')).rejects.toThrow(/unknown service/);
  });

  it('goes away whole: its containers, the tenants\' containers, networks and volumes', async () => {
    await deploy('destroy');
    expect(await tenantContainers()).toEqual([]);
    expect(await docker.listContainers({ all: true, filters: { label: [`com.docker.compose.project=${project}`] } })).toEqual([]);
    const networks = await docker.listNetworks();
    expect(networks.map((n) => n.Name).filter((n) => n.startsWith(project))).toEqual([]);
    const volumes = (await docker.listVolumes()).Volumes ?? [];
    expect(volumes.map((v) => v.Name).filter((n) => n.startsWith(`${project}_`))).toEqual([]);
    // Its iptables chains and their jumps are gone too.
    const { stdout: rules } = await run('iptables', ['-w', '10', '-S']);
    const hash = (await import('node:crypto')).createHash('sha256').update(project).digest('hex').slice(0, 10);
    expect(rules).not.toContain(`FCC-${hash}`);
    expect(rules).not.toContain(`fct${hash}`);
    // Someone else's deployment is not touched: only names of this project went.
    expect(await portFreeLocally(ports.proxy)).toBe(true);
  });
});

async function portFreeLocally(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.createServer();
    s.once('error', () => resolve(false));
    s.listen(port, '127.0.0.1', () => s.close(() => resolve(true)));
  });
}
