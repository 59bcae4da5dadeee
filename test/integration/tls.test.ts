// HTTPS at the proxy, with certificates made here by Debian's openssl and real TLS clients over
// loopback (node:https, node:http2, ws): the certificate chosen by SNI (exact, wildcard, default),
// unknown names refused, certificates swapped and removed without a restart (a broken pair keeps
// the old one), HTTP/1.1 and HTTP/2 by ALPN, WebSockets over TLS, X-Forwarded-Proto https, and
// the per-app redirect of http:// to https://.

import { execFileSync } from 'node:child_process';
import { X509Certificate } from 'node:crypto';
import { mkdtempSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs';
import https from 'node:https';
import http2 from 'node:http2';
import os from 'node:os';
import path from 'node:path';
import tls from 'node:tls';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { httpsLocation } from '../../src/proxy/tls.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const IMAGE = 'fastcontainer/hello';
let dir: string;
let work: string;
let t: TestStack;
let port: number;

/** A self-signed certificate for `names` (the first is the CN), written to `file`.crt/.key in `into`. */
function makeCert(into: string, file: string, names: string[], keyFrom?: string): { cert: string; key: string } {
  const keyPath = path.join(into, `${file}.key`);
  const certPath = path.join(into, `${file}.crt`);
  const args = ['req', '-x509', '-days', '2', '-subj', `/CN=${names[0]}`, '-addext', `subjectAltName=${names.map((n) => `DNS:${n}`).join(',')}`, '-out', certPath];
  if (keyFrom === undefined) args.push('-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-keyout', keyPath);
  else args.push('-key', keyFrom);
  execFileSync('openssl', args, { stdio: 'pipe' });
  return { cert: readFileSync(certPath, 'utf8'), key: keyFrom === undefined ? readFileSync(keyPath, 'utf8') : readFileSync(keyFrom, 'utf8') };
}

/** Makes a pair in the work directory and moves it into the certificate directory, key first (as a renewal would). */
function install(file: string, names: string[]): string {
  const made = makeCert(work, file, names);
  renameSync(path.join(work, `${file}.key`), path.join(dir, `${file}.key`));
  renameSync(path.join(work, `${file}.crt`), path.join(dir, `${file}.crt`));
  return made.cert;
}

/** The certificate the proxy shows for a server name (undefined: no SNI); rejects if the handshake fails. */
function peerCert(servername: string | undefined): Promise<string> {
  return new Promise((resolve, reject) => {
    const socket = tls.connect({ host: '127.0.0.1', port, ...(servername === undefined ? {} : { servername }), rejectUnauthorized: false, ALPNProtocols: ['http/1.1'] }, () => {
      const cert = socket.getPeerX509Certificate();
      socket.destroy();
      if (cert === undefined) reject(new Error('no certificate'));
      else resolve(cert.toString());
    });
    socket.once('error', reject);
  });
}

const normalise = (pem: string) => new X509Certificate(pem).toString();

/** GET over HTTPS/1.1 with SNI and the certificate trusted. */
function httpsGet(host: string, p: string, ca: string): Promise<{ status: number; body: string; headers: Record<string, unknown>; alpn: string | false | null }> {
  return new Promise((resolve, reject) => {
    const req = https.request({ host: '127.0.0.1', port, path: p, servername: host, headers: { host }, ca, agent: false, ALPNProtocols: ['http/1.1'] } as https.RequestOptions, (res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body, headers: res.headers, alpn: (res.socket as tls.TLSSocket).alpnProtocol }));
    });
    req.on('error', reject);
    req.end();
  });
}

let certA: string;
let certB: string;

beforeAll(async () => {
  dir = mkdtempSync(path.join(os.tmpdir(), 'fctest-tls-'));
  work = mkdtempSync(path.join(os.tmpdir(), 'fctest-tls-work-'));
  certA = install('a.test', ['a.test']);
  certB = install('b.test', ['b.test']);
  t = await startTestStack({ runtime: new FakeRuntime(), env: { FC_TLS_DIR: dir, FC_TLS_PORT: '0', FC_TLS_RELOAD: '200ms', FC_DRAIN_TIMEOUT: '3s' } });
  port = t.stack.proxy?.secure?.port ?? 0;
  expect(port).toBeGreaterThan(0);
  for (const [name, extra] of [['a', {}], ['b', { httpsRedirect: true }], ['w', {}]] as const) {
    const host = name === 'w' ? 'x.w.test' : `${name}.test`;
    expect((await t.api('POST', '/v1/apps', { name, hostnames: [host, ...(name === 'w' ? ['y.x.w.test'] : [])], image: IMAGE, ...extra })).status).toBe(201);
  }
});

afterAll(async () => {
  await t?.cleanup();
  rmSync(dir, { recursive: true, force: true });
  rmSync(work, { recursive: true, force: true });
});

describe('HTTPS at the proxy', () => {
  it('shows each host its own certificate by SNI and serves HTTP/1.1 with X-Forwarded-Proto https', async () => {
    expect(await peerCert('a.test')).toBe(normalise(certA));
    expect(await peerCert('B.TEST')).toBe(normalise(certB));
    const res = await httpsGet('a.test', '/headers', certA);
    expect(res.status).toBe(200);
    expect(res.alpn).toBe('http/1.1');
    const headers = JSON.parse(res.body) as Record<string, string>;
    expect(headers['x-forwarded-proto']).toBe('https');
    expect(headers.host).toBe('a.test');
    const metrics = await (await request(`${t.adminUrl}/metrics`)).body.text();
    const expiry = /^fc_proxy_tls_certificate_expiry_seconds\{name="a\.test"[^}]*\} (\d+)$/m.exec(metrics);
    expect(Number(expiry?.[1])).toBeGreaterThan(Date.now() / 1000 + 86_400);
  });

  it('refuses the handshake for a name it has no certificate for, and without SNI, while there is no _default', async () => {
    await expect(peerCert('c.test')).rejects.toThrow();
    await expect(peerCert(undefined)).rejects.toThrow();
    // Another tenant's certificate is never shown for the name.
    const cert = install('_default', ['default.invalid']);
    await eventually(() => peerCert('c.test').then((c) => c === normalise(cert), () => false), { what: 'the default certificate' });
    expect(await peerCert(undefined)).toBe(normalise(cert));
    rmSync(path.join(dir, '_default.crt'));
    rmSync(path.join(dir, '_default.key'));
    await eventually(() => peerCert('c.test').then(() => false, () => true), { what: 'the default certificate gone' });
  });

  it('serves a wildcard for one label only', async () => {
    const cert = install('*.w.test', ['*.w.test']);
    await eventually(() => peerCert('x.w.test').then((c) => c === normalise(cert), () => false), { what: 'the wildcard' });
    await expect(peerCert('y.x.w.test')).rejects.toThrow();
    await expect(peerCert('w.test')).rejects.toThrow();
    const res = await httpsGet('x.w.test', '/', cert);
    expect(res.status).toBe(200);
  });

  it('takes a renewed certificate without a restart, and keeps the old one when the new pair is broken', async () => {
    const before = await peerCert('a.test');
    const renewed = install('a.test', ['a.test']);
    await eventually(async () => (await peerCert('a.test')) === normalise(renewed), { what: 'the renewed certificate' });
    expect(normalise(renewed)).not.toBe(before);
    // A certificate whose key is another's: refused, the renewed one keeps serving.
    makeCert(work, 'broken', ['a.test']);
    writeFileSync(path.join(dir, 'a.test.crt'), readFileSync(path.join(work, 'broken.crt')));
    const result = await t.stack.proxy?.secure?.certs.reload();
    expect(result?.failed).toEqual(['a.test']);
    expect(await peerCert('a.test')).toBe(normalise(renewed));
    const ok = await httpsGet('a.test', '/', renewed);
    expect(ok.status).toBe(200);
    certA = renewed;
  });

  it('speaks HTTP/2 by ALPN: the request reaches the app with its body and the Host from :authority', async () => {
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: 'a.test', ca: certA });
    try {
      const get = (p: string, method = 'GET', body?: Buffer, extra: http2.OutgoingHttpHeaders = {}) => new Promise<{ status: number; body: Buffer; headers: http2.IncomingHttpHeaders }>((resolve, reject) => {
        const stream = session.request({ ':method': method, ':path': p, ':authority': 'a.test', ...extra });
        const chunks: Buffer[] = [];
        let headers: http2.IncomingHttpHeaders = {};
        stream.on('response', (h) => (headers = h));
        stream.on('data', (d: Buffer) => chunks.push(d));
        stream.on('end', () => resolve({ status: Number(headers[':status']), body: Buffer.concat(chunks), headers }));
        stream.on('error', reject);
        if (body === undefined) stream.end();
        else {
          // In two DATA frames without content-length.
          stream.write(body.subarray(0, 1000));
          setTimeout(() => stream.end(body.subarray(1000)), 20);
        }
      });
      const h = await get('/headers');
      expect(session.alpnProtocol).toBe('h2');
      expect(h.status).toBe(200);
      const seen = JSON.parse(h.body.toString()) as Record<string, string>;
      expect(seen.host).toBe('a.test');
      expect(seen['x-forwarded-proto']).toBe('https');
      expect(Object.keys(seen).some((k) => k.startsWith(':'))).toBe(false);
      // Cookie crumbs (separate fields in HTTP/2) reach the app as one Cookie header.
      const raw = JSON.parse((await get('/raw-headers', 'GET', undefined, { cookie: ['a=1', 'b=2'] })).body.toString()) as string[];
      const cookieFields = raw.filter((_, i) => i % 2 === 0 && raw[i]?.toLowerCase() === 'cookie');
      expect(cookieFields).toHaveLength(1);
      expect(raw[raw.findIndex((x, i) => i % 2 === 0 && x.toLowerCase() === 'cookie') + 1]).toBe('a=1; b=2');
      const body = Buffer.alloc(50_000, 3);
      const echoed = await get('/echo', 'POST', body);
      expect(echoed.status).toBe(200);
      expect(echoed.body.equals(body)).toBe(true);
      // Larger than FC_BUFFER_BODY (1 MiB): streamed to the app under the proxy's watch, not buffered.
      const large = Buffer.alloc(3 * 1024 * 1024, 5);
      const streamed = await get('/echo', 'POST', large);
      expect(streamed.status).toBe(200);
      expect(streamed.body.equals(large)).toBe(true);
      // An error answer over HTTP/2 (unknown host) is a problem, not a broken stream.
      const unknown = await new Promise<number>((resolve, reject) => {
        const s = session.request({ ':path': '/', ':authority': 'nobody.test' });
        s.on('response', (hh) => resolve(Number(hh[':status'])));
        s.on('error', reject);
        s.resume();
        s.end();
      });
      expect(unknown).toBe(404);
    } finally {
      session.close();
    }
  });

  it('carries WebSockets over TLS (wss://)', async () => {
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { headers: { host: 'a.test' }, servername: 'a.test', ca: certA } as WebSocket.ClientOptions);
    const got = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    ws.send('over tls');
    expect(await got).toBe('over tls');
    ws.close();
  });

  it('redirects http:// to https:// (308, same target) only for apps that ask, and never over HTTPS', async () => {
    const plain = await request(`${t.proxyUrl}/x/y?z=1`, { headers: { host: 'b.test:8080' } });
    await plain.body.dump();
    expect(plain.statusCode).toBe(308);
    expect(plain.headers.location).toBe(`https://b.test:${port}/x/y?z=1`);
    const post = await request(`${t.proxyUrl}/form`, { method: 'POST', body: 'a=1', headers: { host: 'b.test' } });
    await post.body.dump();
    expect(post.statusCode).toBe(308);
    const other = await t.get('a.test', '/');
    expect(other.status).toBe(200);
    const secure = await httpsGet('b.test', '/', certB);
    expect(secure.status).toBe(200);
  });

  it('refuses more than 1000 headers over HTTPS/1.1 (431), as over plain HTTP', async () => {
    const answer = await new Promise<string>((resolve, reject) => {
      const socket = tls.connect({ host: '127.0.0.1', port, servername: 'a.test', ca: certA, ALPNProtocols: ['http/1.1'] }, () => {
        let text = 'GET / HTTP/1.1\r\nHost: a.test\r\nConnection: close\r\n';
        for (let i = 0; i < 1100; i++) text += `x-h${i}: v\r\n`;
        socket.write(`${text}\r\n`);
      });
      let data = '';
      socket.setEncoding('latin1');
      socket.on('data', (d: string) => (data += d));
      socket.on('end', () => resolve(data));
      socket.on('error', reject);
    });
    expect(answer).toMatch(/^HTTP\/1\.1 431 /);
  });

  it('refuses to start with an FC_TLS_DIR that cannot be read', async () => {
    // The embedded CMDB: nothing is left behind by the failed start.
    await expect(startTestStack({ runtime: new FakeRuntime(), store: 'memory', env: { FC_TLS_DIR: path.join(dir, 'missing'), FC_TLS_PORT: '0' } }))
      .rejects.toMatchObject({ code: 'FC_ERR_CONFIG', message: expect.stringContaining('FC_TLS_DIR') });
  });

  it('builds the redirect target from the host and port', () => {
    expect(httpsLocation('shop.example', '/a?b', 443)).toBe('https://shop.example/a?b');
    expect(httpsLocation('shop.example', '/a', 8443)).toBe('https://shop.example:8443/a');
    expect(httpsLocation('::1', '/', 8443)).toBe('https://[::1]:8443/');
  });

  // Last: it stops the stack.
  it('on shutdown, closes idle HTTPS/1.1 connections at once, sends HTTP/2 sessions GOAWAY, and keeps wss:// until the drain timeout (1001)', async () => {
    const events: string[] = [];
    const agent = new https.Agent({ keepAlive: true, maxSockets: 1 });
    const idle = await new Promise<tls.TLSSocket>((resolve, reject) => {
      let socket: tls.TLSSocket | undefined;
      const req = https.request({ host: '127.0.0.1', port, path: '/', servername: 'a.test', headers: { host: 'a.test' }, ca: certA, agent }, (res) => {
        res.resume();
        res.on('end', () => (socket === undefined ? reject(new Error('no socket')) : resolve(socket)));
      });
      req.once('socket', (s) => (socket = s as tls.TLSSocket));
      req.on('error', reject);
      req.end();
    });
    idle.once('close', () => events.push('http1 idle closed'));
    const session = http2.connect(`https://127.0.0.1:${port}`, { servername: 'a.test', ca: certA });
    session.on('error', () => undefined);
    await new Promise<void>((resolve) => session.once('connect', () => resolve()));
    session.once('goaway', () => events.push('h2 goaway'));
    const ws = new WebSocket(`wss://127.0.0.1:${port}/ws`, { headers: { host: 'a.test' }, servername: 'a.test', ca: certA } as WebSocket.ClientOptions);
    await new Promise<void>((resolve, reject) => {
      ws.once('open', () => resolve());
      ws.once('error', reject);
    });
    const wsClosed = new Promise<number>((resolve) => ws.once('close', (code) => {
      events.push('wss closed');
      resolve(code);
    }));
    const stopping = t.stack.close();
    await eventually(() => events.includes('http1 idle closed') && events.includes('h2 goaway'), { what: 'idle connections told to go' });
    const echo = new Promise<string>((resolve) => ws.once('message', (d) => resolve(String(d))));
    ws.send('still open');
    expect(await echo).toBe('still open');
    expect(await wsClosed).toBe(1001);
    expect(events.indexOf('wss closed')).toBe(2);
    await stopping;
    agent.destroy();
    session.destroy();
  });
});
