// The reverse proxies people put in front of an app, from Debian (scripts/bench.sh installs
// them): nginx, HAProxy and Caddy, each as our own child process in the foreground, on a free
// loopback port, with a config generated here for one upstream (a container's address). Debian's
// own services stay stopped.
//
// All three are configured alike and as they would be in front of an app that serves a bounded
// number of requests at once (Apache prefork: 20 workers): keep-alive to the client and to the
// upstream, no access log, at most UPSTREAM_CONNECTIONS connections to the container, the
// requests beyond them waiting in the proxy, as fastcontainer's dispatcher does. nginx is the
// exception that cannot wait: see nginxConf.

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { request } from 'undici';
import { freePort } from '../../test/helpers/net.js';
import { stop } from './proc.js';

/**
 * Connections to one container: the dispatcher's (FC_CONTAINER_CONNECTIONS, 16 unless set in the
 * bench's environment, which `fastcontainer up` inherits), and so the other proxies' too.
 */
export const UPSTREAM_CONNECTIONS = Number(process.env.FC_CONTAINER_CONNECTIONS || 16);

export interface RunningProxy {
  url: string;
  stop(): Promise<void>;
}

export interface ReverseProxy {
  name: string;
  /** Starts an instance in front of `upstream` (ip:port) and resolves once it answers 200 on `/`. */
  start(upstream: string): Promise<RunningProxy>;
}

/**
 * nginx, its upstream kept alive (HTTP/1.1, `Connection` cleared, a cache of idle connections).
 *
 * Two things made the earlier reference look worse than nginx is (p99 230 ms, 15 errors):
 * - `keepalive_requests` (default 1000) closes a client's connection after 1000 requests: at
 *   10,000 req/s over 50 connections that is every connection once per 5 s row, and autocannon
 *   counts the request it had sent on it as an error. fastcontainer's proxy, HAProxy and Caddy set
 *   no such limit; here it is lifted too (measured: 8 errors in 5 s with it, 0 without).
 * - the idle keep-alive connections of the path measured before it held Apache's workers; the
 *   bench now starts every row with none (see warm-path.ts).
 * What remains is nginx's own: open-source nginx cannot bound the connections to an upstream and
 * queue the requests beyond them (`max_conns` answers 502 past it; the queue is nginx Plus'), so
 * with 50 clients it opens up to 50 connections to Apache's 20 workers, and a request sent on one
 * Apache has not accepted waits in the accept queue until a worker ends its connection
 * (MaxKeepAliveRequests 100): a p99 of tens of ms where the proxies that queue have a few.
 * The cache of idle upstream connections holds more than the clients can use at once (128 per
 * worker for 50 clients): a smaller one (16) makes nginx close a connection after nearly every
 * response and open another, 14,000 sockets in TIME_WAIT per 5 s row in front of the static image,
 * which ran this host out of ports to the container's address and took nginx from 24,000 req/s to
 * 8,500 in the next row. Two workers (`auto` here) do better than one (p99 27-79 ms against 150 ms
 * on the PHP page).
 */
export function nginxConf(dir: string, port: number, upstream: string): string {
  return `
worker_processes auto;
pid ${dir}/nginx.pid;
error_log ${dir}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${dir}/body;
  proxy_temp_path ${dir}/proxy;
  fastcgi_temp_path ${dir}/fastcgi;
  uwsgi_temp_path ${dir}/uwsgi;
  scgi_temp_path ${dir}/scgi;
  upstream app {
    server ${upstream};
    keepalive 128;
  }
  keepalive_requests 1000000;
  keepalive_timeout 65s;
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $remote_addr;
    }
  }
}
`;
}

/**
 * HAProxy: `maxconn` on the server queues what is beyond it in HAProxy; idle server connections
 * are shared (`http-reuse always`). One thread, like fastcontainer's event loop: on two cores shared
 * with Apache and the load generator, a second thread costs more than it gives (measured side by
 * side on a PHP page: 8,700-9,100 req/s and p99 14-16 ms with two, 11,000-12,600 and 8 ms with one).
 */
export function haproxyConf(port: number, upstream: string): string {
  return `
global
  maxconn 4096
  nbthread 1
defaults
  mode http
  timeout connect 5s
  timeout client 30s
  timeout server 30s
  timeout queue 30s
  timeout http-keep-alive 10s
  http-reuse always
frontend web
  bind 127.0.0.1:${port}
  default_backend app
backend app
  option forwardfor
  server container ${upstream} maxconn ${UPSTREAM_CONNECTIONS}
`;
}

/**
 * Caddy: Go's transport waits for a connection beyond `max_conns_per_host`. No admin endpoint, no
 * HTTPS, errors only. GOMAXPROCS as Go sets it (2 here; 1 measured the same).
 */
export function caddyfile(port: number, upstream: string): string {
  return `
{
  admin off
  auto_https off
  log default {
    output stderr
    level ERROR
  }
}
http://:${port} {
  bind 127.0.0.1
  reverse_proxy ${upstream} {
    transport http {
      max_conns_per_host ${UPSTREAM_CONNECTIONS}
      keepalive_idle_conns_per_host ${UPSTREAM_CONNECTIONS}
    }
  }
}
`;
}

async function answers(url: string): Promise<boolean> {
  try {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false;
  }
}

/** Runs `command` as our own child (so stopping it ends that one process) until its URL answers. */
async function run(name: string, dir: string, port: number, command: string, args: string[], env: Record<string, string> = {}): Promise<RunningProxy> {
  const url = `http://127.0.0.1:${port}`;
  const child: ChildProcess = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'ignore', 'pipe'] });
  let output = '';
  child.stderr?.on('data', (d: Buffer) => (output = (output + d.toString()).slice(-4000)));
  child.once('error', (err) => (output += `\n${err.message}`));
  const cleanup = async () => {
    await stop(child);
    rmSync(dir, { recursive: true, force: true });
  };
  for (let i = 0; !(await answers(url)); i++) {
    if (i > 200 || child.exitCode !== null || child.signalCode !== null) {
      await cleanup();
      throw new Error(`${name} did not answer on ${url}: ${output.trim() || 'no output'}`);
    }
    await new Promise((r) => setTimeout(r, 25));
  }
  return { url, stop: cleanup };
}

export const nginx: ReverseProxy = {
  name: 'nginx',
  async start(upstream) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-nginx-'));
    const port = await freePort();
    writeFileSync(path.join(dir, 'nginx.conf'), nginxConf(dir, port, upstream));
    return run('nginx', dir, port, 'nginx', ['-e', 'stderr', '-c', path.join(dir, 'nginx.conf'), '-g', 'daemon off;']);
  },
};

export const haproxy: ReverseProxy = {
  name: 'HAProxy',
  async start(upstream) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-haproxy-'));
    const port = await freePort();
    writeFileSync(path.join(dir, 'haproxy.cfg'), haproxyConf(port, upstream));
    // -db: foreground, no daemon; -q: no start-up notices.
    return run('HAProxy', dir, port, 'haproxy', ['-db', '-q', '-f', path.join(dir, 'haproxy.cfg')]);
  },
};

export const caddy: ReverseProxy = {
  name: 'Caddy',
  async start(upstream) {
    const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-caddy-'));
    const port = await freePort();
    writeFileSync(path.join(dir, 'Caddyfile'), caddyfile(port, upstream));
    // Its storage and config dirs in ours, not in the home directory.
    return run('Caddy', dir, port, 'caddy', ['run', '--adapter', 'caddyfile', '--config', path.join(dir, 'Caddyfile')], { XDG_DATA_HOME: dir, XDG_CONFIG_HOME: dir, HOME: dir });
  },
};
