// Slow clients: does a crowd uploading at 700 B/s change what a normal visitor of the same app
// sees? Goal (issue 8): 100 slow clients change a normal client's p99 by at most 2x.
//
// `fastcontainer up` (the built CLI, real Docker), one app on fastcontainer/php (its default page)
// with one container (maxContainers 1, autoscale off, freezeAfter 0), so that the container's
// connections (FC_CONTAINER_CONNECTIONS, 16) are the scarce thing a slow upload would hold. Then,
// FC_BENCH_SLOW_SECONDS (10) each, side by side in one run:
//   alone:  FC_BENCH_SLOW_NORMAL (4) normal clients, each a loop of GETs through the proxy on a
//           keep-alive connection, every request timed to the end of its answer;
//   beside: the same, while FC_BENCH_SLOW_CLIENTS (100) slow clients each send a POST of the same
//           app byte by byte at 700 B/s over raw TCP (as the attack did): four in five with
//           a 64 KiB body (read whole at the proxy), one in five with a 4 MiB one (larger than
//           FC_BUFFER_BODY: its first MiB must arrive before it may take a slot). A slow client
//           whose connection is closed (408) opens a new one at once, until the phase ends.
// The ratio of the two p99s is the verdict; failed normal requests and the slow clients' 408s are
// counted. About 40 s in all.

import net from 'node:net';
import { Pool } from 'undici';
import { startFastcontainer } from './lib/fastcontainer.js';
import { markdownTable } from './lib/load.js';
import { fmt, goalsMarkdown } from './lib/report.js';
import { quantile } from './lib/timeline.js';

const GOAL_RATIO = 2;
const HOST = 'slow-clients.bench';
const seconds = Number(process.env.FC_BENCH_SLOW_SECONDS ?? 10);
const normalClients = Number(process.env.FC_BENCH_SLOW_NORMAL ?? 4);
const slowClients = Number(process.env.FC_BENCH_SLOW_CLIENTS ?? 100);
/** 700 B/s: 70 bytes every 100 ms. */
const PIECE = 70;
const PIECE_MS = 100;

interface Phase {
  times: number[];
  failed: number;
}

/** Normal clients: GET loops on keep-alive connections until `until`. */
async function normalLoad(proxyUrl: string, until: number): Promise<Phase> {
  const pool = new Pool(proxyUrl, { connections: normalClients, pipelining: 1 });
  const times: number[] = [];
  let failed = 0;
  try {
    await Promise.all(Array.from({ length: normalClients }, async () => {
      while (Date.now() < until) {
        const began = performance.now();
        try {
          // Bounded, so that an app taken offline shows as failures, not as a phase that never ends.
          const res = await pool.request({ path: '/', method: 'GET', headers: { host: HOST }, headersTimeout: 5_000, bodyTimeout: 5_000 });
          await res.body.dump();
          if (res.statusCode === 200) times.push(performance.now() - began);
          else failed += 1;
        } catch {
          failed += 1;
        }
      }
    }));
  } finally {
    await pool.destroy();
  }
  return { times, failed };
}

interface SlowCrowd {
  /** Connections opened in all (a client reconnects when it is cut off). */
  connections: number;
  /** Answers with status 408 the slow clients got. */
  timeouts: number;
  /** Other answers (a slow body that did arrive whole, or an error). */
  other: number;
  stop(): void;
}

/** `n` clients trickling POST bodies at 700 B/s, each reconnecting when cut off. */
function slowCrowd(port: number, n: number): SlowCrowd {
  let stopped = false;
  const sockets = new Set<net.Socket>();
  const crowd: SlowCrowd = {
    connections: 0,
    timeouts: 0,
    other: 0,
    stop() {
      stopped = true;
      for (const s of sockets) s.destroy();
    },
  };
  const client = (i: number) => {
    if (stopped) return;
    const length = i % 5 === 4 ? 4 * 1024 * 1024 : 64 * 1024;
    const socket = net.connect(port, '127.0.0.1');
    crowd.connections += 1;
    sockets.add(socket);
    let answered = false;
    socket.once('connect', () => socket.write(`POST /upload HTTP/1.1\r\nHost: ${HOST}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`));
    const timer = setInterval(() => {
      if (socket.writable) socket.write('x'.repeat(PIECE));
    }, PIECE_MS);
    socket.on('data', (d: Buffer) => {
      if (answered) return;
      answered = true;
      if (d.toString('latin1').startsWith('HTTP/1.1 408')) crowd.timeouts += 1;
      else crowd.other += 1;
    });
    socket.on('error', () => undefined);
    socket.once('close', () => {
      clearInterval(timer);
      sockets.delete(socket);
      setTimeout(() => client(i), 10);
    });
  };
  for (let i = 0; i < n; i++) client(i);
  return crowd;
}

export async function benchSlowClients(): Promise<string> {
  const fc = await startFastcontainer();
  try {
    await fc.api('POST', '/v1/apps', { name: 'slow-clients', hostnames: [HOST], image: 'fastcontainer/php', autoscale: false, minContainers: 0, maxContainers: 1, freezeAfter: 0 });
    // Warm: the container is up before anything is measured.
    const warm = await normalLoad(fc.proxyUrl, Date.now() + 2_000);
    if (warm.times.length === 0) throw new Error(`the app did not answer (${warm.failed} failed)`);
    const alone = await normalLoad(fc.proxyUrl, Date.now() + seconds * 1000);
    const crowd = slowCrowd(Number(new URL(fc.proxyUrl).port), slowClients);
    // The crowd takes hold first: every slow client connected and sending.
    await new Promise((r) => setTimeout(r, 2_000));
    let beside: Phase;
    try {
      beside = await normalLoad(fc.proxyUrl, Date.now() + seconds * 1000);
    } finally {
      crowd.stop();
    }
    const p = (ph: Phase, q: number) => quantile(ph.times, q);
    const ratio = p(beside, 0.99) / p(alone, 0.99);
    const rows = [
      ['alone', alone.times.length, alone.failed, fmt(p(alone, 0.5), 1), fmt(p(alone, 0.99), 1), '-'],
      [`beside ${slowClients} slow clients`, beside.times.length, beside.failed, fmt(p(beside, 0.5), 1), fmt(p(beside, 0.99), 1), `${crowd.connections} connections, ${crowd.timeouts} answered 408, ${crowd.other} other answers`],
    ];
    return [
      `${normalClients} normal clients (GET loops on keep-alive connections), ${seconds} s per phase; ${slowClients} slow clients at 700 B/s (4 in 5 with a 64 KiB body, 1 in 5 with 4 MiB), app on fastcontainer/php with one container.`,
      '',
      markdownTable(['phase', 'normal requests', 'failed', 'p50 ms', 'p99 ms', 'slow clients'], rows),
      '',
      goalsMarkdown([
        { goal: `normal client's p99 beside ${slowClients} slow clients ≤ ${GOAL_RATIO}× alone`, met: ratio <= GOAL_RATIO && beside.failed === 0, detail: `${fmt(ratio, 2)}× (${fmt(p(beside, 0.99), 1)} vs ${fmt(p(alone, 0.99), 1)} ms), ${beside.failed} failed` },
      ]),
    ].join('\n');
  } finally {
    await fc.stop();
  }
}
