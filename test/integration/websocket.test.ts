// WebSockets (HTTP Upgrade) through the proxy and the dispatcher, on real Redis and loopback
// sockets with the fake runtime (its containers answer WebSockets with the `ws` server), in both
// shapes: one process (`up`: the proxy calls the dispatcher directly) and proxy and dispatcher
// apart (the signed HTTP hop). Each use beside its abuse: unknown hosts, unsigned upgrades at the
// dispatcher, h2c, a container that never answers, smuggling through a refused upgrade, the cap
// per app, idle and drain closes (1001).

import net from 'node:net';
import { request } from 'undici';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { HopAuth } from '../../src/shared/hop-auth.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { uniqueName } from '../helpers/env.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

const IMAGE = 'fastcontainer/hello';

interface Shape {
  name: string;
  runtime: FakeRuntime;
  /** Where the public connects, and the CoreAPI. */
  front: TestStack;
  /** The dispatcher's stack (the same as front in one process). */
  back: TestStack;
  cleanup(): Promise<void>;
}

// The idle timeout short, for its own test; the drain timeout long enough that what a test checks
// while a drain holds is done before it ends (the WebSockets held through it are kept alive).
const env = { FC_UPGRADE_MAX_PER_APP: '3', FC_UPGRADE_IDLE_TIMEOUT: '1500ms', FC_DRAIN_TIMEOUT: '5s', FC_DRAIN_GRACE: '0' };

async function oneProcess(): Promise<Shape> {
  const runtime = new FakeRuntime();
  const t = await startTestStack({ runtime, env });
  return { name: 'one process', runtime, front: t, back: t, cleanup: () => t.cleanup() };
}

async function apart(): Promise<Shape> {
  const runtime = new FakeRuntime();
  const prefix = uniqueName('fctest');
  const back = await startTestStack({ runtime, prefix, roles: ['dispatcher'], env });
  const front = await startTestStack({ runtime: new FakeRuntime(), prefix, roles: ['coreapi', 'proxy'], env });
  return { name: 'proxy and dispatcher apart', runtime, front, back, cleanup: async () => { await front.cleanup(); await back.cleanup(); } };
}

/** Opens a WebSocket through the proxy for a host; resolves once open, or rejects with the HTTP status. */
function connect(proxyUrl: string, host: string, path = '/ws', extra: Record<string, string> = {}): Promise<WebSocket> {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(`${proxyUrl.replace('http:', 'ws:')}${path}`, { headers: { host, ...extra } });
    // A message may come in the same packet as the 101: kept until asked for.
    const inbox: Buffer[] = [];
    const waiting: ((d: Buffer) => void)[] = [];
    ws.on('message', (d: Buffer) => {
      const w = waiting.shift();
      if (w !== undefined) w(d);
      else inbox.push(d);
    });
    inboxes.set(ws, { inbox, waiting });
    ws.once('open', () => resolve(ws));
    ws.once('unexpected-response', (_req, res) => {
      let body = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => (body += d));
      res.on('end', () => reject(Object.assign(new Error(`HTTP ${res.statusCode}`), { status: res.statusCode, body, headers: res.headers })));
    });
    ws.once('error', reject);
  });
}

const inboxes = new WeakMap<WebSocket, { inbox: Buffer[]; waiting: ((d: Buffer) => void)[] }>();

function nextBuffer(ws: WebSocket): Promise<Buffer> {
  const box = inboxes.get(ws);
  if (box === undefined) throw new Error('not a connect() socket');
  const first = box.inbox.shift();
  if (first !== undefined) return Promise.resolve(first);
  return new Promise((resolve, reject) => {
    box.waiting.push(resolve);
    ws.once('close', (code) => reject(new Error(`closed with ${code} before a message`)));
  });
}

/**
 * Pings until the WebSocket closes, as a live app's client would: FC_UPGRADE_IDLE_TIMEOUT, shorter
 * than FC_DRAIN_TIMEOUT, then never ends it, and a close at a drain's end is the drain's doing.
 */
function keepAlive(ws: WebSocket): void {
  const timer = setInterval(() => {
    if (ws.readyState === WebSocket.OPEN) ws.ping();
  }, 300);
  ws.once('close', () => clearInterval(timer));
}

const nextMessage = async (ws: WebSocket): Promise<string> => String(await nextBuffer(ws));

function closed(ws: WebSocket): Promise<{ code: number; reason: string }> {
  return new Promise((resolve) => ws.once('close', (code, reason) => resolve({ code, reason: String(reason) })));
}

/** Raw bytes to a server, and everything it answers until it closes (or 3 s pass). */
function raw(url: string, text: string): Promise<{ answer: string; closed: boolean }> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    const timer = setTimeout(() => {
      socket.destroy();
      resolve({ answer, closed: false });
    }, 3000);
    socket.on('close', () => {
      clearTimeout(timer);
      resolve({ answer, closed: true });
    });
    socket.on('error', reject);
  });
}

const seen = (s: Shape) => [...s.runtime.containers.values()].flatMap((c) => c.seen);

async function inflightOf(s: Shape, app: string): Promise<number> {
  const body = (await (await request(`${s.back.adminUrl}/v1/containers`)).body.json()) as { containers: { app: string; inflight: number }[] };
  return body.containers.filter((c) => c.app === app).reduce((n, c) => n + c.inflight, 0);
}

async function openGauge(s: Shape, app: string): Promise<number> {
  const text = await (await request(`${s.front.adminUrl}/metrics`)).body.text();
  const m = new RegExp(`^fc_proxy_websockets_open\\{app="${app}"[^}]*\\} (\\d+)$`, 'm').exec(text);
  return m === null ? 0 : Number(m[1]);
}

const KEY = 'dGhlIHNhbXBsZSBub25jZQ==';

describe.each([{ make: oneProcess }, { make: apart }])('WebSockets ($make.name)', ({ make }) => {
  let s: Shape;

  beforeAll(async () => {
    s = await make();
    for (const name of ['ws', 'slow', 'cap', 'drain', 'moved', 'one', 'chat', 'quiet']) {
      const extra = name === 'slow' ? { upstreamTimeout: 1 } : name === 'one' ? { maxConcurrency: 1 } : name === 'chat' || name === 'quiet' ? { freezeAfter: 1 } : {};
      const created = await s.front.api('POST', '/v1/apps', { name, hostnames: [`${name}.test`], image: IMAGE, ...extra });
      expect(created.status).toBe(201);
    }
  });

  afterAll(async () => {
    await s?.cleanup();
  });

  it('opens with a cold start, echoes both ways and carries the forwarded headers, counted in flight', async () => {
    expect(s.runtime.containers.size).toBe(0);
    const ws = await connect(s.front.proxyUrl, 'ws.test', '/ws/headers');
    const headers = JSON.parse(await nextMessage(ws)) as Record<string, string>;
    expect(headers['x-forwarded-proto']).toBe('http');
    expect(headers['x-forwarded-for']).toBe('127.0.0.1');
    expect(headers.host).toBe('ws.test');
    expect(Object.keys(headers).filter((h) => h.startsWith('x-fc-'))).toEqual([]);
    ws.send('hello');
    expect(await nextMessage(ws)).toBe('hello');
    const big = Buffer.alloc(200_000, 7);
    ws.send(big);
    const back = await nextBuffer(ws);
    expect(back.equals(big)).toBe(true);
    expect(await inflightOf(s, 'ws')).toBe(1);
    expect(await openGauge(s, 'ws')).toBe(1);
    ws.close(1000);
    expect((await closed(ws)).code).toBe(1000);
    await eventually(async () => (await inflightOf(s, 'ws')) === 0, { what: 'the tunnel to leave the in-flight count' });
    await eventually(async () => (await openGauge(s, 'ws')) === 0, { what: 'the proxy\'s gauge to drop' });
  });

  it('sends an upgrade that reached a container drained a moment ago to another container', async () => {
    const first = await connect(s.front.proxyUrl, 'moved.test');
    keepAlive(first);
    const entry = (await s.front.api('GET', '/v1/apps/moved/containers')).body.containers[0].id as string;
    const done = closed(first);
    expect((await s.front.api('DELETE', `/v1/containers/${entry}`)).status).toBeLessThan(300);
    await eventually(async () => (await s.front.api('GET', `/v1/containers/${entry}`)).body?.state === 'draining', { what: 'the drain' });
    // The proxy has not heard of the drain yet: its cache still shows the entry ready.
    const cache = s.front.stack.cache;
    const stored = await s.front.stack.store.getContainer(entry);
    if (cache === undefined || stored === null) throw new Error('no cache or entry');
    cache.observe({ ...stored, state: 'ready', rev: stored.rev + 1000 });
    try {
      const second = await connect(s.front.proxyUrl, 'moved.test', '/ws/second');
      second.send('elsewhere');
      expect(await nextMessage(second)).toBe('elsewhere');
      const byContainer = [...s.runtime.containers.values()].filter((c) => c.seen.some((x) => x.url === '/ws/second'));
      expect(byContainer).toHaveLength(1);
      const drained = [...s.runtime.containers.values()].filter((c) => c.spec.labels[labelKeys.container] === entry);
      expect(drained).toHaveLength(1);
      expect(byContainer[0]).not.toBe(drained[0]);
      second.close();
    } finally {
      cache.observe({ ...stored, state: 'gone', rev: stored.rev + 2000 });
    }
    first.close();
    await done;
  });

  it('holds the app\'s slot (maxConcurrency) only for the handshake: open WebSockets do not starve its requests', async () => {
    const a = await connect(s.front.proxyUrl, 'one.test');
    const b = await connect(s.front.proxyUrl, 'one.test');
    const plain = await s.front.get('one.test', '/');
    expect(plain.status).toBe(200);
    b.send('b');
    expect(await nextMessage(b)).toBe('b');
    a.close();
    b.close();
  });

  it('never freezes a container while it has a WebSocket open (one without is frozen meanwhile)', async () => {
    const ws = await connect(s.front.proxyUrl, 'chat.test');
    expect((await s.front.get('quiet.test', '/')).status).toBe(200);
    const entryOf = async (app: string) => (await s.front.api('GET', `/v1/apps/${app}/containers`)).body.containers[0] as { frozenAt: number | null };
    // Pings keep the WebSocket within FC_UPGRADE_IDLE_TIMEOUT meanwhile, as a live app's would.
    await eventually(async () => {
      ws.ping();
      return (await entryOf('quiet')).frozenAt != null;
    }, { what: 'the quiet app frozen', timeout: 15_000, interval: 200 });
    expect((await entryOf('chat')).frozenAt ?? null).toBeNull();
    ws.send('awake');
    expect(await nextMessage(ws)).toBe('awake');
    ws.close();
  });

  it('answers an upgrade for an unknown host 404, and starts nothing', async () => {
    const before = s.runtime.creates;
    await expect(connect(s.front.proxyUrl, 'nobody.test')).rejects.toMatchObject({ status: 404 });
    expect(s.runtime.creates).toBe(before);
  });

  it('serves an h2c upgrade as the plain request it also is, and refuses one with a body', async () => {
    const plain = await raw(s.front.proxyUrl, 'GET /h2c HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nHTTP2-Settings: AAMAAABkAAQCAAAAAAIAAAAA\r\n\r\n');
    expect(plain.answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(plain.answer).toContain('Hello from FastContainer (fake)');
    expect(plain.answer).not.toMatch(/^HTTP\/1\.1 101/m);
    // The container saw a plain request, without the Upgrade.
    expect(seen(s).find((r) => r.url === '/h2c')).toMatchObject({ kind: 'request', upgrade: undefined });
    const withBody = await raw(s.front.proxyUrl, 'POST /h2c-body HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade, HTTP2-Settings\r\nUpgrade: h2c\r\nContent-Length: 5\r\n\r\nhello');
    expect(withBody.answer).toMatch(/^HTTP\/1\.1 400 /);
    expect(withBody.answer).toContain('FC_ERR_UPGRADE_REFUSED');
    expect(withBody.closed).toBe(true);
    expect(seen(s).some((r) => r.url === '/h2c-body')).toBe(false);
  });

  it('does not tunnel when the container refuses the upgrade: what the client sent after it never reaches the container', async () => {
    const upgrade = `GET /ws/plain HTTP/1.1\r\nHost: ws.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\n\r\n`;
    const smuggled = 'GET /smuggled HTTP/1.1\r\nHost: ws.test\r\n\r\n';
    const r = await raw(s.front.proxyUrl, upgrade + smuggled);
    expect(r.answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(r.answer).toContain('no\n');
    expect(r.closed).toBe(true);
    // Exactly one answer: the smuggled request was answered by nobody and seen by no container.
    expect(r.answer.match(/HTTP\/1\.1 /g)).toHaveLength(1);
    expect(seen(s).some((x) => x.url === '/smuggled')).toBe(false);
  });

  it('serves a request with Upgrade but no Connection: upgrade as a plain request, without the header', async () => {
    const r = await raw(s.front.proxyUrl, 'GET /not-an-upgrade HTTP/1.1\r\nHost: ws.test\r\nUpgrade: websocket\r\nConnection: close\r\n\r\n');
    expect(r.answer).toMatch(/^HTTP\/1\.1 200 /);
    expect(seen(s).find((x) => x.url === '/not-an-upgrade')).toMatchObject({ kind: 'request', upgrade: undefined });
  });

  it('answers 504 when the container never answers the upgrade (the app\'s upstreamTimeout)', async () => {
    const err = await connect(s.front.proxyUrl, 'slow.test', '/ws/hang').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ status: 504 });
    // The app works otherwise.
    const ws = await connect(s.front.proxyUrl, 'slow.test', '/ws');
    ws.close();
  });

  it('caps the WebSockets of one app (FC_UPGRADE_MAX_PER_APP = 3): the fourth is 503 with Retry-After, and a slot frees when one closes', async () => {
    const open = [await connect(s.front.proxyUrl, 'cap.test'), await connect(s.front.proxyUrl, 'cap.test'), await connect(s.front.proxyUrl, 'cap.test')];
    const err = await connect(s.front.proxyUrl, 'cap.test').then(() => undefined, (e: unknown) => e);
    expect(err).toMatchObject({ status: 503 });
    expect((err as { body: string }).body).toContain('FC_ERR_UPGRADE_LIMIT');
    expect((err as { headers: Record<string, string> }).headers['retry-after']).toBe('5');
    // Another app is not held by this one's cap.
    (await connect(s.front.proxyUrl, 'ws.test')).close();
    const first = open[0] as WebSocket;
    first.close();
    await closed(first);
    const again = await eventually(() => connect(s.front.proxyUrl, 'cap.test').catch(() => undefined), { what: 'a freed slot' });
    for (const ws of [...open, again]) ws.close();
  });

  it('closes an idle WebSocket with 1001 after FC_UPGRADE_IDLE_TIMEOUT', async () => {
    const ws = await connect(s.front.proxyUrl, 'ws.test');
    ws.send('once');
    expect(await nextMessage(ws)).toBe('once');
    expect((await closed(ws)).code).toBe(1001);
  });

  it('holds a drain while a WebSocket is open (it still echoes), then closes it with 1001 at the drain timeout', async () => {
    const ws = await connect(s.front.proxyUrl, 'drain.test');
    keepAlive(ws);
    const entry = (await s.front.api('GET', '/v1/apps/drain/containers')).body.containers[0].id as string;
    const done = closed(ws);
    expect((await s.front.api('DELETE', `/v1/containers/${entry}`)).status).toBeLessThan(300);
    await eventually(async () => (await s.front.api('GET', `/v1/containers/${entry}`)).body?.state === 'draining', { what: 'the entry draining' });
    ws.send('still here');
    expect(await nextMessage(ws)).toBe('still here');
    expect(await inflightOf(s, 'drain')).toBe(1);
    expect((await done).code).toBe(1001);
    await eventually(async () => (await s.front.api('GET', `/v1/containers/${entry}`)).status === 404, { what: 'the container removed' });
  });
});

describe('the dispatcher port refuses upgrades without a valid proxy signature', () => {
  let s: Shape;
  beforeAll(async () => {
    s = await apart();
    expect((await s.front.api('POST', '/v1/apps', { name: 'victim', hostnames: ['victim.test'], image: IMAGE })).status).toBe(201);
    (await connect(s.front.proxyUrl, 'victim.test')).close();
  });
  afterAll(async () => {
    await s?.cleanup();
  });

  it('403 unsigned, forged or signed for another target; the signed one switches', async () => {
    const entry = (await s.front.api('GET', '/v1/apps/victim/containers')).body.containers[0].id as string;
    const signer = new HopAuth(await s.back.stack.store.clusterSecret('never-used-candidate-0123456789'), 30_000);
    const upgrade = (path: string, auth: string | undefined) =>
      raw(s.back.dispatcherUrl, `GET ${path} HTTP/1.1\r\nHost: victim.test\r\nConnection: Upgrade\r\nUpgrade: websocket\r\nSec-WebSocket-Key: ${KEY}\r\nSec-WebSocket-Version: 13\r\nx-fc-container: ${entry}\r\n${auth === undefined ? '' : `x-fc-auth: ${auth}\r\n`}\r\n`);
    const before = seen(s).length;
    const unsigned = await upgrade('/ws', undefined);
    expect(unsigned.answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(unsigned.closed).toBe(true);
    const forged = await upgrade('/ws', new HopAuth('another-secret-0123456789abcdef', 30_000).sign({ method: 'GET', target: '/ws', entryId: entry }, Date.now()));
    expect(forged.answer).toMatch(/^HTTP\/1\.1 403 /);
    const otherTarget = await upgrade('/ws', signer.sign({ method: 'GET', target: '/other', entryId: entry }, Date.now()));
    expect(otherTarget.answer).toMatch(/^HTTP\/1\.1 403 /);
    expect(seen(s).length).toBe(before);
    // The same request signed as a proxy would: switched (the gate is what refused the others).
    const signed = await upgrade('/ws', signer.sign({ method: 'GET', target: '/ws', entryId: entry }, Date.now()));
    expect(signed.answer).toMatch(/^HTTP\/1\.1 101 /);
  });
});

describe('a shutdown (SIGTERM) waits for WebSockets up to FC_DRAIN_TIMEOUT, then closes them with 1001', () => {
  it.each([
    { shape: 'one process', make: oneProcess, stop: (s: Shape) => s.front.stack.close() },
    { shape: 'the dispatcher of a proxy elsewhere', make: apart, stop: (s: Shape) => s.back.stack.close() },
  ])('$shape', async ({ make, stop }) => {
    const s = await make();
    try {
      expect((await s.front.api('POST', '/v1/apps', { name: 'bye', hostnames: ['bye.test'], image: IMAGE })).status).toBe(201);
      const ws = await connect(s.front.proxyUrl, 'bye.test');
      keepAlive(ws);
      const done = closed(ws);
      const stopping = stop(s);
      // Still served while the server drains.
      ws.send('during the drain');
      expect(await nextMessage(ws)).toBe('during the drain');
      expect((await done).code).toBe(1001);
      await stopping;
    } finally {
      await s.cleanup();
    }
  });
});

describe('an upgrade whose dispatcher refuses the connection goes to a container on another host', () => {
  it('passes over the dead host and starts the app elsewhere', async () => {
    const s = await apart();
    const runtimeB = new FakeRuntime();
    let b: TestStack | undefined;
    try {
      expect((await s.front.api('POST', '/v1/apps', { name: 'hop', hostnames: ['hop.test'], image: IMAGE })).status).toBe(201);
      (await connect(s.front.proxyUrl, 'hop.test')).close();
      const before = (await s.front.api('GET', '/v1/apps/hop/containers')).body.containers as { id: string; host: string; state: string }[];
      expect(before).toMatchObject([{ host: s.back.hostId, state: 'ready' }]);
      // The first host's dispatcher dies; its heartbeat is still recent, its entry still ready.
      await s.back.stack.destroy();
      b = await startTestStack({ runtime: runtimeB, prefix: s.back.prefix, roles: ['dispatcher'], env, hostId: uniqueName('fctest-host-b') });
      await eventually(() => s.front.stack.cache?.host(b?.hostId ?? '') !== undefined, { what: 'the proxy to see the new host' });
      const ws = await connect(s.front.proxyUrl, 'hop.test', '/ws/after');
      ws.send('moved on');
      expect(await nextMessage(ws)).toBe('moved on');
      expect([...runtimeB.containers.values()].some((c) => c.seen.some((x) => x.url === '/ws/after'))).toBe(true);
      ws.close();
    } finally {
      await b?.cleanup();
      await s.cleanup();
    }
  });
});
