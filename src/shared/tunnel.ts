// WebSocket tunnels (HTTP Upgrade), shared by the proxy (client <-> dispatcher) and the dispatcher
// (client or proxy <-> container). After a 101 the two sockets carry WebSocket frames both ways;
// a tunnel pipes them with back-pressure, ends after an idle time, and can close itself with a
// WebSocket close frame 1001 ("going away") at a drain or a shutdown.
//
// The close frame is written only between two frames of the upstream's stream: FrameBoundary
// follows the frame headers of what the upstream sends (never their payloads) so that the frame
// is not written into the middle of one of the app's messages, which the client would take as
// garbage. Worked example: the upstream sent 0x81 0x05 "hel" (a 5-byte text frame, 3 bytes so
// far) when the drain ends: "lo" is still forwarded, then 0x88 0x02 0x03 0xe9 (close, 1001).
//
// Only WebSocket upgrades are ever tunnelled (isWebSocketUpgrade): a tunnel is opened only after
// the upstream answered 101 to it. Any other answer is relayed as an answer and the connection
// closes, so bytes the client sent after its upgrade request never reach the upstream as a
// request of their own (request smuggling through a refused upgrade).

import { ServerResponse, type IncomingMessage } from 'node:http';
import http from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { FcError } from './errors.js';
import { connectionTokens, isHopByHop } from './http.js';
import { upstreamFailure } from './upstream-errors.js';

/** A GET asking to switch to WebSocket: the one upgrade the platform tunnels (not h2c, not others). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const up = req.headers.upgrade;
  return req.method === 'GET' && typeof up === 'string' && up.trim().toLowerCase() === 'websocket';
}

/**
 * A ServerResponse on an upgrade request's raw socket, so an answer other than 101 (an error, or
 * the upstream's refusal) goes through the usual helpers; the connection closes after it.
 */
export function responseOn(req: IncomingMessage, socket: Duplex): ServerResponse {
  const res = new ServerResponse(req);
  res.shouldKeepAlive = false;
  res.assignSocket(socket as Socket);
  res.once('finish', () => {
    res.detachSocket(socket as Socket);
    socket.end();
  });
  return res;
}

export type UpgradeOutcome =
  | { kind: 'upgraded'; res: IncomingMessage; socket: Socket; head: Buffer }
  | { kind: 'answered'; res: IncomingMessage };

export interface UpgradeRequest {
  host: string;
  port: number;
  path: string;
  /** Flat [name, value, ...], Host included; Connection and Upgrade are added here. */
  headers: string[];
  /** Longest wait (ms) for the upstream's answer to the upgrade; past it, 504. */
  timeoutMs: number;
  /** Says where the request was going, for error messages. */
  upstream: string;
  /** Aborts the wait (the client went away). */
  signal?: AbortSignal;
}

/** Sends an upgrade request upstream: the upstream's 101 with its socket, or its other answer. */
export function requestUpgrade(r: UpgradeRequest): Promise<UpgradeOutcome> {
  return new Promise((resolve, reject) => {
    const req = http.request({
      host: r.host, port: r.port, method: 'GET', path: r.path, agent: false, setHost: false,
      headers: [...r.headers, 'Connection', 'Upgrade', 'Upgrade', 'websocket'],
    });
    let settled = false;
    const fail = (err: unknown) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
      req.destroy();
      reject(upstreamFailure(err, r.upstream));
    };
    const onAbort = () => fail(r.signal?.reason ?? new Error('aborted'));
    const timer = setTimeout(() => fail(new FcError('FC_ERR_UPSTREAM_TIMEOUT', `${r.upstream} did not answer the upgrade within ${r.timeoutMs} ms`, { upstream: r.upstream })), r.timeoutMs);
    r.signal?.addEventListener('abort', onAbort, { once: true });
    const done = (o: UpgradeOutcome) => {
      if (settled) {
        if (o.kind === 'upgraded') o.socket.destroy();
        else o.res.destroy();
        return;
      }
      settled = true;
      clearTimeout(timer);
      r.signal?.removeEventListener('abort', onAbort);
      resolve(o);
    };
    req.on('upgrade', (res, socket, head) => done({ kind: 'upgraded', res, socket, head }));
    req.on('response', (res) => done({ kind: 'answered', res }));
    req.on('error', fail);
    req.end();
  });
}

/** The upstream's 101 as the client gets it: status line and its headers, x-fc-* left out. */
export function switchingProtocolsHead(res: IncomingMessage): string {
  let head = 'HTTP/1.1 101 Switching Protocols\r\n';
  const raw = res.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    if ((raw[i] as string).toLowerCase().startsWith('x-fc-')) continue;
    head += `${raw[i] as string}: ${raw[i + 1] as string}\r\n`;
  }
  return `${head}\r\n`;
}

/**
 * Completes an upgrade the upstream accepted: its 101 and whatever either side sent early go
 * through. A client gone meanwhile closes the upstream's socket and throws.
 */
export function switchProtocols(client: Duplex, upgraded: Extract<UpgradeOutcome, { kind: 'upgraded' }>, head: Buffer): void {
  if (client.destroyed) {
    upgraded.socket.destroy();
    throw new Error('client went away');
  }
  client.write(switchingProtocolsHead(upgraded.res));
  if (upgraded.head.length > 0) client.write(upgraded.head);
  if (head.length > 0) upgraded.socket.write(head);
}

/** True when a 101 is the WebSocket switch the client asked for (not some other protocol). */
export function isWebSocketSwitch(res: IncomingMessage): boolean {
  const up = res.headers.upgrade;
  return res.statusCode === 101 && typeof up === 'string' && up.trim().toLowerCase() === 'websocket';
}

/** Relays an upstream's refusal of an upgrade (any answer but 101) to the client, then closes. */
export function relayAnswer(upstream: IncomingMessage, res: ServerResponse): void {
  const tokens = connectionTokens(upstream.headers.connection);
  const headers: string[] = [];
  const raw = upstream.rawHeaders;
  for (let i = 0; i < raw.length; i += 2) {
    const lower = (raw[i] as string).toLowerCase();
    // Transfer-Encoding is hop-by-hop: Node frames the body again (Content-Length, if any, stays).
    if (isHopByHop(lower, tokens)) continue;
    headers.push(raw[i] as string, raw[i + 1] as string);
  }
  res.writeHead(upstream.statusCode ?? 502, headers);
  upstream.pipe(res);
  upstream.once('error', () => res.destroy());
}

/** A close frame from the server's side (unmasked), with its status code. */
export function closeFrame(code: number): Buffer {
  return Buffer.from([0x88, 0x02, (code >> 8) & 0xff, code & 0xff]);
}

/** Follows the frame boundaries of one direction of a WebSocket stream (headers only). */
export class FrameBoundary {
  private header: number[] = [];
  private remaining = 0;

  get atBoundary(): boolean {
    return this.header.length === 0 && this.remaining === 0;
  }

  /**
   * Reads `chunk` and returns how many of its bytes belong to frames that began before: all of
   * it, unless `stop` (then it stops at the first boundary, possibly 0).
   */
  feed(chunk: Buffer, stop = false): number {
    let i = 0;
    while (i < chunk.length) {
      if (stop && this.atBoundary) return i;
      if (this.remaining > 0) {
        const n = Math.min(this.remaining, chunk.length - i);
        this.remaining -= n;
        i += n;
        continue;
      }
      this.header.push(chunk[i] as number);
      i++;
      const h = this.header;
      if (h.length < 2) continue;
      const len7 = (h[1] as number) & 0x7f;
      const masked = ((h[1] as number) & 0x80) !== 0;
      const extended = len7 === 126 ? 2 : len7 === 127 ? 8 : 0;
      if (h.length < 2 + extended + (masked ? 4 : 0)) continue;
      let length = len7;
      if (extended > 0) {
        length = 0;
        for (let k = 0; k < extended; k++) length = length * 256 + (h[2 + k] as number);
      }
      this.header = [];
      this.remaining = length;
    }
    return i;
  }
}

export interface TunnelOptions {
  /** No byte either way for this long: the tunnel closes (1001). */
  idleMs: number;
  /** Longest wait for the upstream's current frame to end before the close frame; then cut. */
  frameWaitMs?: number;
}

/** A WebSocket connection after its 101: bytes both ways until either side ends or it is closed. */
export class Tunnel {
  readonly closed: Promise<void>;
  private closing: Promise<void> | null = null;
  private readonly frames = new FrameBoundary();
  private finishClose: (() => void) | null = null;

  constructor(readonly client: Duplex, readonly upstream: Duplex, private readonly o: TunnelOptions) {
    let open = 2;
    this.closed = new Promise((resolve) => {
      const gone = () => {
        if (--open === 0) resolve();
      };
      client.once('close', gone);
      upstream.once('close', gone);
    });
    client.on('error', () => upstream.destroy());
    upstream.on('error', () => client.destroy());
    client.once('close', () => upstream.destroy());
    upstream.once('close', () => {
      // The upstream cut while a close frame waits for its frame: the client still gets the frame.
      if (this.finishClose !== null) this.finishClose();
      else client.end();
    });
    client.once('end', () => upstream.end());
    upstream.once('end', () => {
      if (this.finishClose === null) client.end();
    });
    upstream.on('data', (chunk: Buffer) => {
      if (this.finishClose !== null) {
        const n = this.frames.feed(chunk, true);
        if (n > 0) client.write(chunk.subarray(0, n));
        if (this.frames.atBoundary) this.finishClose();
        return;
      }
      if (this.closing !== null) return;
      this.frames.feed(chunk);
      if (!client.write(chunk)) {
        upstream.pause();
        client.once('drain', () => upstream.resume());
      }
    });
    client.on('data', (chunk: Buffer) => {
      if (this.closing !== null) return;
      if (!upstream.write(chunk)) {
        client.pause();
        upstream.once('drain', () => client.resume());
      }
    });
    (client as Socket).setTimeout?.(o.idleMs, () => void this.goingAway());
  }

  /**
   * Closes with a close frame (1001 unless told), after the upstream's current frame, within
   * frameWaitMs; resolves once both sockets are closed.
   */
  goingAway(code = 1001): Promise<void> {
    if (this.closing !== null) return this.closing;
    const { client, upstream } = this;
    this.closing = new Promise<void>((resolve) => {
      let done = false;
      const finish = () => {
        if (done) return;
        done = true;
        clearTimeout(wait);
        upstream.destroy();
        client.end(closeFrame(code));
        // A client that never closes its side is cut a moment later.
        setTimeout(() => client.destroy(), 1000).unref();
        resolve();
      };
      const wait = setTimeout(() => {
        done = true;
        upstream.destroy();
        client.destroy();
        resolve();
      }, this.o.frameWaitMs ?? 1000);
      wait.unref();
      this.finishClose = finish;
      upstream.resume();
      if (this.frames.atBoundary || upstream.destroyed) finish();
    }).then(() => this.closed);
    return this.closing;
  }

  destroy(): void {
    this.client.destroy();
    this.upstream.destroy();
  }
}

/** The open tunnels of a server or container: counted, closed together at a drain's end. */
export class Tunnels {
  private readonly open = new Set<Tunnel>();

  add(t: Tunnel): void {
    this.open.add(t);
    void t.closed.then(() => this.open.delete(t));
  }

  get size(): number {
    return this.open.size;
  }

  /** Closes every tunnel with 1001 (after its current frame); resolves when all are closed. */
  async goingAway(): Promise<void> {
    await Promise.all([...this.open].map((t) => t.goingAway()));
  }

  destroy(): void {
    for (const t of this.open) t.destroy();
  }
}
