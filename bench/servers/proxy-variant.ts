// One way of writing a reverse proxy in Node, forwarding everything to a backend:
//   undici-stream            undici Pool.stream() writing into the response (what fastcontainer uses)
//   undici-request-pipeline  undici Pool.request() and stream.pipeline() of its body
//   http-proxy-3             http-proxy-3 with a keep-alive agent
//   node-http                node:http request with a keep-alive agent, piped

import http from 'node:http';
import type { AddressInfo } from 'node:net';
import { pipeline } from 'node:stream/promises';
import { createProxyServer } from 'http-proxy-3';
import { Pool } from 'undici';
import { forward, upstreamRequestHeaders } from '../../src/shared/forward.js';

const [variant, target] = process.argv.slice(2) as [string, string];
const connections = 128;
let handler: http.RequestListener;

switch (variant) {
  case 'undici-stream': {
    const pool = new Pool(target, { connections, pipelining: 1 });
    handler = (req, res) => {
      forward({ pool, req, res, headers: upstreamRequestHeaders(req, () => false, []), upstream: 'backend' }).catch(() => {
        res.statusCode = 502;
        res.end();
      });
    };
    break;
  }
  case 'undici-request-pipeline': {
    const pool = new Pool(target, { connections, pipelining: 1 });
    handler = (req, res) => {
      pool
        .request({ path: req.url ?? '/', method: 'GET', headers: upstreamRequestHeaders(req, () => false, []) })
        .then(async (up) => {
          res.writeHead(up.statusCode, up.headers as http.OutgoingHttpHeaders);
          await pipeline(up.body, res);
        })
        .catch(() => {
          res.statusCode = 502;
          res.end();
        });
    };
    break;
  }
  case 'http-proxy-3': {
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    const proxy = createProxyServer({ target, agent, xfwd: true });
    proxy.on('error', (_err, _req, res) => {
      const r = res as http.ServerResponse;
      r.statusCode = 502;
      r.end();
    });
    handler = (req, res) => proxy.web(req, res);
    break;
  }
  case 'node-http': {
    const agent = new http.Agent({ keepAlive: true, maxSockets: connections });
    const url = new URL(target);
    handler = (req, res) => {
      const up = http.request({ host: url.hostname, port: url.port, path: req.url, method: req.method, headers: req.headers, agent }, (r) => {
        res.writeHead(r.statusCode ?? 502, r.headers);
        r.pipe(res);
      });
      up.on('error', () => {
        res.statusCode = 502;
        res.end();
      });
      req.pipe(up);
    };
    break;
  }
  default:
    throw new Error(`unknown variant ${variant}`);
}

const server = http.createServer({ keepAliveTimeout: 60_000 }, handler);
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
