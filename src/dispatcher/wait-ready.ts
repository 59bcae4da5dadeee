// A starting container is ready when its port accepts a connection (tried every few ms: a refused
// connect on the bridge costs microseconds) and, if the app names one, its readiness path answers
// below 500.

import net from 'node:net';
import { request } from 'undici';
import type { Clock } from '../shared/clock.js';
import { FcError } from '../shared/errors.js';

export interface WaitReadyOptions {
  ip: string;
  port: number;
  readinessPath: string | null;
  hostHeader: string;
  deadline: number;
  intervalMs: number;
  clock: Clock;
  /** Called now and then while waiting; throws (e.g. the container exited) to give up. */
  check(): Promise<void>;
  what: string;
}

function tryConnect(ip: string, port: number, timeoutMs: number): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = net.connect({ host: ip, port });
    const done = (ok: boolean) => {
      socket.destroy();
      resolve(ok);
    };
    socket.setTimeout(timeoutMs, () => done(false));
    socket.once('connect', () => done(true));
    socket.once('error', () => done(false));
  });
}

async function tryHttp(ip: string, port: number, path: string, host: string, timeoutMs: number): Promise<boolean> {
  try {
    const res = await request(`http://${ip}:${port}${path}`, {
      method: 'GET',
      headers: { host, 'user-agent': 'fastcontainer-readiness' },
      headersTimeout: timeoutMs,
      bodyTimeout: timeoutMs,
    });
    await res.body.dump();
    return res.statusCode < 500;
  } catch {
    return false;
  }
}

/** How often the container's own state is checked, in polls. */
const CHECK_EVERY = 20;

export async function waitReady(o: WaitReadyOptions): Promise<void> {
  let polls = 0;
  for (;;) {
    const left = o.deadline - o.clock.now();
    if (left <= 0) {
      throw new FcError('FC_ERR_START_FAILED', `${o.what} did not accept connections on port ${o.port} in time`, { port: o.port }, { retryAfter: 5 });
    }
    // Not before the first try: the engine round trip would only delay a container that is up.
    if (polls > 0 && polls % CHECK_EVERY === 0) await o.check();
    polls += 1;
    if (await tryConnect(o.ip, o.port, Math.min(1000, left))) {
      if (o.readinessPath === null || (await tryHttp(o.ip, o.port, o.readinessPath, o.hostHeader, Math.min(2000, left)))) return;
    }
    await o.clock.sleep(o.intervalMs);
  }
}
