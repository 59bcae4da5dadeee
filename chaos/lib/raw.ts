// Raw HTTP/1.1 over a TCP socket, for what an HTTP client library would not send: thousands of
// headers, or a body trickled a few bytes at a time.

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
