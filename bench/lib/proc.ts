// Child processes for benchmarks: each server runs in its own process so that the load
// generator, the proxy under test and the backend do not share an event loop.

import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';

export interface Running {
  port: number;
  child: ChildProcess;
  stop(): Promise<void>;
}

/** Starts `node <script> ...args` (a compiled bench server) and waits for its "READY <port>" line. */
export function startNode(script: string, args: string[] = [], env: Record<string, string> = {}): Promise<Running> {
  const file = fileURLToPath(new URL(`../servers/${script}.js`, import.meta.url));
  return startProcess(process.execPath, [file, ...args], env);
}

export function startProcess(command: string, args: string[], env: Record<string, string> = {}): Promise<Running> {
  const child = spawn(command, args, { env: { ...process.env, ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
  let output = '';
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      child.kill('SIGKILL');
      reject(new Error(`${command} ${args.join(' ')} did not become ready:\n${output}`));
    }, 30_000);
    const onData = (d: Buffer) => {
      output += d.toString();
      const m = /READY (\d+)/.exec(output);
      if (m !== null) {
        clearTimeout(timer);
        child.stdout?.off('data', onData);
        child.stdout?.resume();
        child.stderr?.resume();
        resolve({ port: Number(m[1]), child, stop: () => stop(child) });
      }
    };
    child.stdout?.on('data', onData);
    child.stderr?.on('data', (d: Buffer) => (output += d.toString()));
    child.once('exit', (code) => {
      clearTimeout(timer);
      reject(new Error(`${command} exited with ${code}:\n${output}`));
    });
  });
}

export async function stop(child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return;
  const exited = new Promise<void>((resolve) => child.once('exit', () => resolve()));
  child.kill('SIGTERM');
  const timer = setTimeout(() => child.kill('SIGKILL'), 5000);
  await exited;
  clearTimeout(timer);
}
