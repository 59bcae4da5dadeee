// A small, fast HTTP backend with keep-alive: the proxies under test forward to it.

import http from 'node:http';
import type { AddressInfo } from 'node:net';

const body = Buffer.from(`<!doctype html><title>bench</title><p>${'hello from the backend '.repeat(24)}</p>\n`);
const server = http.createServer({ keepAliveTimeout: 60_000 }, (_req, res) => {
  res.writeHead(200, { 'content-type': 'text/html', 'content-length': body.length });
  res.end(body);
});
server.listen(0, '127.0.0.1', () => {
  process.stdout.write(`READY ${(server.address() as AddressInfo).port}\n`);
});
process.on('SIGTERM', () => server.close(() => process.exit(0)));
