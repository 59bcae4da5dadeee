// A ContainerRuntime without an engine: each "container" is an HTTP server in this process on its
// own loopback address (127.77.x.y), so dispatcher tests can stage slow starts, crashes and slow
// requests quickly. It passes the same runtime contract as the Docker runtime.

import http from 'node:http';
import { randomBytes } from 'node:crypto';
import { WebSocketServer } from 'ws';
import { FcError } from '../../src/shared/errors.js';
import type { ContainerRuntime, ContainerSpec, LogFollow, RuntimeContainer, RuntimeEvent, RuntimeLogLine } from '../../src/dispatcher/container-runtime.js';
import { lineText } from '../../src/dispatcher/log-lines.js';
import type { CpuCounters } from '../../src/dispatcher/signals/cgroup.js';

export interface FakeImage {
  /** Milliseconds between start and listening. */
  listenAfterMs?: number;
  /** The "process" exits at once with this code and output instead of listening. */
  exit?: { code: number; output: string };
  /** With exit: gone before its network was attached, so start() reports no address (Docker's way). */
  exitBeforeNetwork?: boolean;
  /** Milliseconds each request takes. */
  requestMs?: number;
  /** Milliseconds after listening during which every request gets 503 (an app still booting). */
  unavailableForMs?: number;
}

interface FakeContainer {
  id: string;
  spec: ContainerSpec;
  ip: string | null;
  running: boolean;
  exitCode: number | null;
  output: string;
  server: http.Server | undefined;
  timer: NodeJS.Timeout | undefined;
  cpus: number;
  /** Every request and upgrade it received: method, target and its Upgrade header, if any. */
  seen: { method: string; url: string; upgrade: string | undefined; kind: 'request' | 'upgrade' }[];
  wss: WebSocketServer | undefined;
  /** While frozen, requests wait for the thaw, as a frozen container's would. */
  frozen: { thawed: Promise<void>; thaw: () => void } | undefined;
  /** What it printed (print()), and who follows it. */
  printed: RuntimeLogLine[];
  followers: Set<{ since: number | null; maxLineBytes: number; onLine: (l: RuntimeLogLine) => void; end: () => void }>;
}

let nextAddress = Math.floor(Math.random() * 50_000);

export class FakeRuntime implements ContainerRuntime {
  readonly name = 'fake';
  readonly containers = new Map<string, FakeContainer>();
  readonly images = new Map<string, FakeImage>([['fastcontainer/hello', {}]]);
  private readonly watchers = new Set<{ labels: Record<string, string>; onEvent: (e: RuntimeEvent) => void }>();
  creates = 0;
  /** Set, thaw() fails as an engine that cannot unpause would (a stuck cgroup freezer). */
  failThaw = false;

  async ping(): Promise<void> {}

  async create(spec: ContainerSpec): Promise<string> {
    if (!this.images.has(spec.image)) {
      throw new FcError('FC_ERR_IMAGE_NOT_FOUND', `image "${spec.image}" is not on this host's Docker engine`, { image: spec.image });
    }
    if ([...this.containers.values()].some((c) => c.spec.name === spec.name)) {
      throw new FcError('FC_ERR_START_FAILED', `the name ${spec.name} is already in use`);
    }
    this.creates += 1;
    const id = randomBytes(32).toString('hex');
    this.containers.set(id, { id, spec, ip: null, running: false, exitCode: null, output: '', server: undefined, timer: undefined, cpus: spec.cpus, frozen: undefined, seen: [], wss: undefined, printed: [], followers: new Set() });
    return id;
  }

  async start(id: string): Promise<RuntimeContainer> {
    const c = this.containers.get(id);
    if (c === undefined) throw new FcError('FC_ERR_START_FAILED', `no container ${id}`);
    const image = this.images.get(c.spec.image) ?? {};
    nextAddress = (nextAddress + 1) % 60_000;
    c.ip = `127.77.${Math.floor(nextAddress / 250) + 1}.${(nextAddress % 250) + 2}`;
    c.running = true;
    if (image.exit !== undefined) {
      c.running = false;
      c.exitCode = image.exit.code;
      c.output = image.exit.output;
      if (image.exitBeforeNetwork === true) c.ip = null;
    } else {
      const listensAt = Date.now() + (image.listenAfterMs ?? 0);
      const server = http.createServer((req, res) => {
        c.seen.push({ method: req.method ?? '', url: req.url ?? '', upgrade: req.headers.upgrade, kind: 'request' });
        if (image.unavailableForMs !== undefined && Date.now() < listensAt + image.unavailableForMs) {
          res.writeHead(503, { 'content-type': 'text/plain' });
          res.end('still booting\n');
          return;
        }
        // /headers answers the request's headers as JSON; /echo answers its body.
        if (req.url === '/headers' || req.url === '/raw-headers') {
          res.writeHead(200, { 'content-type': 'application/json' });
          res.end(JSON.stringify(req.url === '/headers' ? req.headers : req.rawHeaders));
          return;
        }
        if (req.url === '/echo') {
          res.writeHead(200, { 'content-type': 'application/octet-stream' });
          req.pipe(res);
          return;
        }
        const answer = () => {
          res.writeHead(200, { 'content-type': 'text/plain' });
          res.end(req.url === '/cgi-bin/whoami' ? `${id.slice(0, 12)}\n` : 'Hello from FastContainer (fake)\n');
        };
        const serve = () => (image.requestMs === undefined ? answer() : setTimeout(answer, image.requestMs));
        if (c.frozen === undefined) serve();
        else void c.frozen.thawed.then(serve);
      });
      // WebSockets: /ws* echoes (/ws/headers first sends the request's headers); /ws/hang never
      // answers the upgrade; /ws/plain answers it 200 on a keep-alive connection, not 101.
      const wss = new WebSocketServer({ noServer: true });
      c.wss = wss;
      server.on('upgrade', (req, socket, head) => {
        c.seen.push({ method: req.method ?? '', url: req.url ?? '', upgrade: req.headers.upgrade, kind: 'upgrade' });
        socket.on('error', () => undefined);
        if (req.url === '/ws/hang') return;
        if (req.url === '/ws/plain') {
          socket.write('HTTP/1.1 200 OK\r\ncontent-type: text/plain\r\ncontent-length: 3\r\n\r\nno\n');
          return;
        }
        wss.handleUpgrade(req, socket, head, (ws) => {
          if (req.url === '/ws/headers') ws.send(JSON.stringify(req.headers));
          ws.on('message', (data, isBinary) => ws.send(data, { binary: isBinary }));
        });
      });
      c.server = server;
      c.timer = setTimeout(() => server.listen(c.spec.port, c.ip as string), image.listenAfterMs ?? 0);
    }
    return this.view(c);
  }

  private view(c: FakeContainer): RuntimeContainer {
    // The "container" runs in this process, so its process is this one.
    return { id: c.id, name: c.spec.name, labels: c.spec.labels, running: c.running, paused: c.frozen !== undefined, ip: c.ip, exitCode: c.exitCode, pid: c.running ? process.pid : null };
  }

  async inspect(id: string): Promise<RuntimeContainer | null> {
    const c = this.containers.get(id);
    return c === undefined ? null : this.view(c);
  }

  async list(labels: Record<string, string>): Promise<RuntimeContainer[]> {
    return [...this.containers.values()]
      .filter((c) => Object.entries(labels).every(([k, v]) => c.spec.labels[k] === v))
      .map((c) => this.view(c));
  }

  private halt(c: FakeContainer, code: number): void {
    clearTimeout(c.timer);
    c.server?.closeAllConnections();
    for (const ws of c.wss?.clients ?? []) ws.terminate();
    c.server?.close();
    c.server = undefined;
    for (const f of c.followers) f.end();
    c.followers.clear();
    if (c.running) {
      c.running = false;
      c.exitCode = code;
    }
  }

  async stop(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (c !== undefined) this.halt(c, 0);
  }

  async remove(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (c === undefined) return;
    this.halt(c, 137);
    this.containers.delete(id);
  }

  async freeze(id: string): Promise<void> {
    const c = this.containers.get(id);
    if (c === undefined || !c.running || c.frozen !== undefined) return;
    let thaw!: () => void;
    const thawed = new Promise<void>((resolve) => (thaw = resolve));
    c.frozen = { thawed, thaw };
  }

  async thaw(id: string): Promise<void> {
    if (this.failThaw) throw new FcError('FC_ERR_ENGINE', 'the engine failed to unpause the container');
    const c = this.containers.get(id);
    c?.frozen?.thaw();
    if (c !== undefined) c.frozen = undefined;
  }

  async update(id: string, change: { cpus: number }): Promise<void> {
    const c = this.containers.get(id);
    if (c !== undefined) c.cpus = change.cpus;
  }

  /** No engine stats: the signals read this process's own cgroup through the pid, or nothing. */
  async cpuStats(): Promise<CpuCounters | null> {
    return null;
  }

  async logs(id: string): Promise<string> {
    return this.containers.get(id)?.output ?? '';
  }

  /** Follows what print() makes the container print, as the engine would: cut at maxLineBytes. */
  followLogs(id: string, o: { sinceMs: number | null; maxLineBytes: number }, onLine: (line: RuntimeLogLine) => void): LogFollow {
    const c = this.containers.get(id);
    let end!: () => void;
    const ended = new Promise<void>((resolve) => { end = resolve; });
    if (c === undefined || !c.running) {
      end();
      return { ended, stop: () => undefined };
    }
    const cut = (l: RuntimeLogLine): RuntimeLogLine => {
      const bytes = Buffer.from(l.text);
      return bytes.length <= o.maxLineBytes ? l : { ...l, text: lineText(bytes.subarray(0, o.maxLineBytes), true) };
    };
    const f = { since: o.sinceMs, maxLineBytes: o.maxLineBytes, onLine: (l: RuntimeLogLine) => onLine(cut(l)), end };
    for (const l of c.printed) if (o.sinceMs === null || l.at >= o.sinceMs) f.onLine(l);
    c.followers.add(f);
    return { ended, stop: () => { c.followers.delete(f); end(); } };
  }

  /** Ends every follow of the container's output while it runs on (a broken stream, an engine restart). */
  breakLogFollows(id: string): void {
    const c = this.containers.get(id);
    if (c === undefined) return;
    for (const f of c.followers) f.end();
    c.followers.clear();
  }

  /** The container prints lines (kept for later followers, as the engine's log file keeps them). */
  print(id: string, stream: 'stdout' | 'stderr', ...texts: string[]): void {
    const c = this.containers.get(id);
    if (c === undefined || !c.running) return;
    for (const text of texts) {
      const line = { stream, at: Date.now(), text };
      if (c.printed.length < 10_000) c.printed.push(line);
      for (const f of c.followers) f.onLine(line);
    }
  }

  watch(labels: Record<string, string>, onEvent: (event: RuntimeEvent) => void): () => void {
    const w = { labels, onEvent };
    this.watchers.add(w);
    return () => this.watchers.delete(w);
  }

  /** The app inside dies on its own, as a crash would; `silent` loses the engine's event. */
  crash(id: string, code = 1, options: { silent?: boolean } = {}): void {
    const c = this.containers.get(id);
    if (c === undefined) return;
    this.halt(c, code);
    if (options.silent === true) return;
    for (const w of this.watchers) {
      if (Object.entries(w.labels).every(([k, v]) => c.spec.labels[k] === v)) w.onEvent({ type: 'die', id, labels: c.spec.labels, exitCode: code });
    }
  }

  cpusOf(id: string): number | undefined {
    return this.containers.get(id)?.cpus;
  }

  async prepare(): Promise<void> {}

  warmStats(): null {
    return null;
  }

  async close(): Promise<void> {
    this.watchers.clear();
    for (const c of this.containers.values()) this.halt(c, 137);
  }
}
