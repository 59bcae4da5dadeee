// The dashboard's files: the page (public/: HTML, one script, one style sheet; no build step) and
// uPlot's, read once at start and served from memory with their content type, an ETag (so a
// reload revalidates and gets 304) and headers that keep the page's own scripts the only ones
// that run: CSP default-src 'self' (no inline script or style anywhere), no framing, no sniffing.

import { createHash } from 'node:crypto';
import { readFileSync } from 'node:fs';
import type { IncomingMessage, ServerResponse } from 'node:http';
import { createRequire } from 'node:module';
import { FcError } from '../../shared/errors.js';

/** What every dashboard answer carries. frame-ancestors is not covered by default-src. */
export const SECURITY_HEADERS: Readonly<Record<string, string>> = {
  'content-security-policy': "default-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'",
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
};

const TYPES: Readonly<Record<string, string>> = {
  html: 'text/html; charset=utf-8',
  js: 'text/javascript; charset=utf-8',
  css: 'text/css; charset=utf-8',
};

/** The page's own files (the size test adds them up) and uPlot's, by the name they are served under. */
export const PAGE_FILES = ['index.html', 'app.js', 'style.css'] as const;

interface Asset {
  body: Buffer;
  type: string;
  etag: string;
}

export class Assets {
  private readonly files = new Map<string, Asset>();

  constructor() {
    // public/ sits beside this module both in src/ (tests) and in dist/ (the build copies it).
    const dir = new URL('./public/', import.meta.url);
    for (const name of PAGE_FILES) this.put(name, readFileSync(new URL(name, dir)));
    const require = createRequire(import.meta.url);
    this.put('uPlot.iife.min.js', readFileSync(require.resolve('uplot/dist/uPlot.iife.min.js')));
    this.put('uPlot.min.css', readFileSync(require.resolve('uplot/dist/uPlot.min.css')));
  }

  private put(name: string, body: Buffer): void {
    const type = TYPES[name.slice(name.lastIndexOf('.') + 1)] ?? 'application/octet-stream';
    this.files.set(name, { body, type, etag: `"${createHash('sha256').update(body).digest('base64url').slice(0, 22)}"` });
  }

  /** The bytes of a served file (tests measure the page). */
  size(name: string): number {
    return this.files.get(name)?.body.length ?? 0;
  }

  serve(req: IncomingMessage, res: ServerResponse, name: string): void {
    const a = this.files.get(name);
    if (a === undefined) throw new FcError('FC_ERR_NOT_FOUND', `no such dashboard file: ${name.slice(0, 100)}`);
    const headers = {
      ...SECURITY_HEADERS,
      'content-type': a.type,
      etag: a.etag,
      // Revalidated on every load (a cheap 304): a CoreAPI upgrade is seen at once.
      'cache-control': 'no-cache',
    };
    if (req.headers['if-none-match'] === a.etag) {
      res.writeHead(304, headers);
      res.end();
      return;
    }
    res.writeHead(200, { ...headers, 'content-length': a.body.length });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  }
}
