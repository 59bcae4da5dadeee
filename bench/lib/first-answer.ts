// The pieces of a cold-start measurement (bench/cold-start.ts, bench/php-image.ts): a container's
// first HTTP answer straight from the engine (polled until its port takes a connection and it
// answers 200, within a deadline), and a stack's network sandboxes, which are let refill between
// two apps' first requests as they would between real ones.

import net from 'node:net';
import type Docker from 'dockerode';
import { request } from 'undici';
import type { Fastcontainer } from './fastcontainer.js';

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

async function canConnect(ip: string, port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const s = net.connect({ host: ip, port });
    s.once('connect', () => { s.destroy(); resolve(true); });
    s.once('error', () => resolve(false));
  });
}

async function answers200(url: string): Promise<boolean> {
  try {
    const res = await request(url);
    await res.body.dump();
    return res.statusCode === 200;
  } catch {
    return false; // not listening yet
  }
}

/** Waits until http://ip:port/ answers 200, polling every 2 ms; throws after `deadlineMs`. */
export async function answerAt(ip: string, port = 8080, deadlineMs = 60_000): Promise<void> {
  const deadline = Date.now() + deadlineMs;
  const late = () => {
    if (Date.now() > deadline) throw new Error(`http://${ip}:${port}/ did not answer 200 within ${deadlineMs / 1000} s`);
  };
  while (!(await canConnect(ip, port))) { late(); await sleep(2); }
  while (!(await answers200(`http://${ip}:${port}/`))) { late(); await sleep(2); }
}

/** The container's address on the default bridge. */
export const ipOf = async (c: Docker.Container): Promise<string> => (await c.inspect()).NetworkSettings.Networks.bridge?.IPAddress as string;

/** A sample of the dispatcher's metric `name` whose labels include `label` (e.g. result="hit"). */
export async function dispatcherMetric(fc: Fastcontainer, name: string, label = ''): Promise<number> {
  const text = await fc.dispatcherMetrics();
  const line = text.split('\n').find((l) => (l.startsWith(`${name}{`) || l.startsWith(`${name} `)) && l.includes(label));
  return line === undefined ? 0 : Number(line.slice(line.lastIndexOf(' ') + 1));
}

/** Waits (at most 3 s) until the stack's pool is full again, as between two apps' first requests. */
export async function poolRefilled(fc: Fastcontainer, size: number): Promise<void> {
  const deadline = Date.now() + 3000;
  while (size > 0 && Date.now() < deadline && (await dispatcherMetric(fc, 'fc_dispatcher_sandboxes')) < size) await sleep(20);
}

/** How many of the stack's starts found a sandbox ready, and how many there were. */
export async function sandboxHits(fc: Fastcontainer): Promise<{ hits: number; starts: number }> {
  const hits = await dispatcherMetric(fc, 'fc_dispatcher_sandbox_starts', 'result="hit"');
  const misses = await dispatcherMetric(fc, 'fc_dispatcher_sandbox_starts', 'result="miss"');
  return { hits, starts: hits + misses };
}
