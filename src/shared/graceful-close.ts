// Closing an HTTP server gracefully (SIGTERM): stop accepting; every request still without an
// answer, and every request that arrives on an open keep-alive connection meanwhile, is answered
// with `Connection: close`, so each connection ends after its current answer; idle connections
// close at once; whatever is still open after the drain timeout is cut. Without this, Node's
// server.close() lets a busy keep-alive client go on sending requests for as long as it likes.

import type { Server, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';

/**
 * Node's http server keeps the response a connection is answering on the socket (`_httpMessage`,
 * set when the response is given the socket, cleared when it finishes): the answers under way,
 * found without a listener or a set per request. (test/integration/graceful-close.test.ts fails
 * should a Node release stop keeping it.)
 */
type TrackedSocket = Socket & { _httpMessage?: ServerResponse | null };

export class GracefulClose {
  private draining = false;
  private readonly sockets = new Set<TrackedSocket>();
  private readonly closed: Promise<void>;

  constructor(private readonly server: Server) {
    server.on('connection', (s: Socket) => {
      this.sockets.add(s);
      s.once('close', () => this.sockets.delete(s));
    });
    this.closed = new Promise<void>((resolve) => server.once('close', () => resolve()));
  }

  /** Called for each request before the handler: one that arrives while draining is the connection's last. */
  track(res: ServerResponse): void {
    if (this.draining) res.setHeader('connection', 'close');
  }

  /** An answer under way when the drain began: its connection ends after it. */
  private closeAfter(res: ServerResponse): void {
    if (res.writableFinished || res.destroyed) return;
    if (!res.headersSent) res.setHeader('connection', 'close');
    // Its keep-alive connection is idle once the answer is through.
    res.once('close', () => setImmediate(() => this.server.closeIdleConnections()));
  }

  get isDraining(): boolean {
    return this.draining;
  }

  /**
   * Stops accepting and drains; after timeoutMs (if given) cuts what is left. Resolves once every
   * connection is closed.
   */
  async close(timeoutMs?: number, beforeCut?: () => Promise<void>): Promise<void> {
    if (!this.draining) {
      this.draining = true;
      for (const s of this.sockets) {
        const res = s._httpMessage;
        if (res != null) this.closeAfter(res);
      }
      this.server.close();
      this.server.closeIdleConnections();
    }
    if (timeoutMs === undefined) return this.closed;
    // Upgraded connections (WebSockets) keep the server open too: at the timeout they are closed
    // politely (beforeCut, bounded by the tunnels' own frame wait), then everything left is cut.
    const timer = setTimeout(() => void (beforeCut === undefined ? this.destroy() : beforeCut().catch(() => undefined).then(() => this.destroy())), timeoutMs);
    timer.unref();
    try {
      await this.closed;
    } finally {
      clearTimeout(timer);
    }
  }

  /** Stops at once, cutting every connection. */
  async destroy(): Promise<void> {
    this.draining = true;
    this.server.close();
    for (const s of this.sockets) s.destroy();
    await this.closed;
  }
}
