// Raw HTTP/1.1 over a TCP socket, for what an HTTP client library would not send: thousands of
// headers, a body trickled a few bytes at a time, or an answer read that slowly.

import net from 'node:net';

/** Sends `head` (and nothing else) and reads the answer until the server closes or `timeoutMs`. */
export function rawRequest(port: number, head: string, timeoutMs = 5000): Promise<{ status: number; text: string; ms: number }> {
  return new Promise((resolve) => {
    const t0 = Date.now();
    const s = net.connect(port, '127.0.0.1');
    let text = '';
    const done = () => {
      clearTimeout(timer);
      s.destroy();
      const m = /^HTTP\/1\.[01] (\d{3})/.exec(text);
      resolve({ status: m === null ? 0 : Number(m[1]), text, ms: Date.now() - t0 });
    };
    const timer = setTimeout(done, timeoutMs);
    s.on('data', (d) => {
      text += d.toString('latin1');
      if (text.length > 1_000_000) done();
    });
    s.on('error', done);
    s.on('close', done);
    s.on('connect', () => s.write(head));
  });
}

/** A client uploading `size` bytes at about `bytesPerSecond`; stop() ends it (socket destroyed). */
export function slowUpload(port: number, host: string, o: { path?: string; size: number; bytesPerSecond: number }): { stop(): void; status(): number } {
  const s = net.connect(port, '127.0.0.1');
  let status = 0;
  let sent = 0;
  const chunk = Math.max(1, Math.round(o.bytesPerSecond / 10));
  let timer: NodeJS.Timeout | undefined;
  s.on('connect', () => {
    s.write(`POST ${o.path ?? '/'} HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${o.size}\r\n\r\n`);
    timer = setInterval(() => {
      if (sent >= o.size || s.destroyed) return clearInterval(timer);
      const n = Math.min(chunk, o.size - sent);
      sent += n;
      s.write('x'.repeat(n));
    }, 100);
  });
  s.on('data', (d) => {
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(d.toString('latin1'));
    if (m !== null && status === 0) status = Number(m[1]);
  });
  s.on('error', () => undefined);
  s.on('close', () => clearInterval(timer));
  return {
    stop() {
      clearInterval(timer);
      s.destroy();
    },
    status: () => status,
  };
}

export interface SlowDownload {
  /** The answer's status (0: none yet). */
  status(): number;
  /** Bytes of the answer's body read so far. */
  read(): number;
  /** The whole body (its Content-Length) was read. */
  complete(): boolean;
  /** The connection ended before the whole answer was read, and not by stop(). */
  cut(): boolean;
  stop(): void;
}

/**
 * A client that asks for `path` and reads its answer at about `bytesPerSecond`: at most
 * bytesPerSecond/10 bytes every 100 ms, in reads of that size (a socket's `onread` buffer; its
 * usual reads take 64 KB at once), the socket paused in between so that the kernel's buffers fill
 * and hold the sender back as a slow link would. stop() ends it (socket destroyed).
 */
export function slowDownload(port: number, host: string, o: { path: string; bytesPerSecond: number }): SlowDownload {
  const chunk = Math.max(64, Math.round(o.bytesPerSecond / 10));
  let status = 0;
  let head = '';
  let length = -1;
  let body = 0;
  let credit = chunk;
  let stopped = false;
  let cut = false;
  const s = net.connect({
    port,
    host: '127.0.0.1',
    onread: {
      buffer: Buffer.alloc(chunk),
      callback(n: number, buf: Uint8Array): boolean {
        credit -= n;
        if (length < 0) {
          head += Buffer.from(buf.buffer, buf.byteOffset, n).toString('latin1');
          const end = head.indexOf('\r\n\r\n');
          if (end >= 0) {
            status = Number(/^HTTP\/1\.[01] (\d{3})/.exec(head)?.[1] ?? 0);
            length = Number(/\r\ncontent-length:\s*(\d+)/i.exec(head.slice(0, end))?.[1] ?? 0);
            body = head.length - end - 4;
            head = '';
          }
        } else {
          body += n;
        }
        return credit > 0;
      },
    },
  });
  const complete = (): boolean => length >= 0 && body >= length;
  const timer = setInterval(() => {
    credit = chunk;
    if (!s.destroyed) s.resume();
  }, 100);
  s.on('connect', () => s.write(`GET ${o.path} HTTP/1.1\r\nHost: ${host}\r\nConnection: close\r\n\r\n`));
  s.on('error', () => undefined);
  s.on('close', () => {
    cut = !stopped && !complete();
    clearInterval(timer);
  });
  return {
    status: () => status,
    read: () => body,
    complete,
    cut: () => cut,
    stop() {
      stopped = true;
      clearInterval(timer);
      s.destroy();
    },
  };
}
