// The CoreAPI's bearer tokens: the admin token (writes and reads) and the read token (reads
// only). Each is its env var if given (FC_API_TOKEN, FC_API_READ_TOKEN), else one generated on
// first start and kept (mode 0600) in the state directory, where the CLI on the same machine finds it.

import { randomBytes } from 'node:crypto';
import { mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import path from 'node:path';

export interface ApiToken {
  token: string;
  /** Where it came from, for the start-up message. */
  source: string;
}

export type TokenKind = 'admin' | 'read';

const files: Record<TokenKind, string> = { admin: 'api-token', read: 'api-read-token' };
const envs: Record<TokenKind, string> = { admin: 'FC_API_TOKEN', read: 'FC_API_READ_TOKEN' };

export function tokenPath(stateDir: string, kind: TokenKind = 'admin'): string {
  return path.join(stateDir, files[kind]);
}

function readToken(file: string): string | undefined {
  try {
    const token = readFileSync(file, 'utf8').trim();
    return token === '' ? undefined : token;
  } catch {
    return undefined;
  }
}

/** For the CoreAPI: the configured token, or the stored one, or a new one stored now. */
export function resolveApiToken(configured: string, stateDir: string, kind: TokenKind = 'admin'): ApiToken {
  if (configured !== '') return { token: configured, source: envs[kind] };
  const file = tokenPath(stateDir, kind);
  const existing = readToken(file);
  if (existing !== undefined) return { token: existing, source: file };
  const token = randomBytes(24).toString('base64url');
  mkdirSync(stateDir, { recursive: true, mode: 0o700 });
  try {
    writeFileSync(file, `${token}\n`, { mode: 0o600, flag: 'wx' });
  } catch (err) {
    // Another process wrote it first: use theirs.
    const theirs = readToken(file);
    if ((err as NodeJS.ErrnoException).code !== 'EEXIST' || theirs === undefined) throw err;
    return { token: theirs, source: file };
  }
  return { token, source: file };
}

/** For the CLI: the configured token or the stored one; undefined if neither exists. */
export function findApiToken(configured: string, stateDir: string, kind: TokenKind = 'admin'): string | undefined {
  return configured !== '' ? configured : readToken(tokenPath(stateDir, kind));
}
