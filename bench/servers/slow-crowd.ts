// Slow clients for the slow-clients benchmark, in a process of their own (the attackers are other
// machines: they do not share the measuring client's event loop). Each of `n` clients sends a POST
// over raw TCP, its body at 700 B/s (70 bytes every 100 ms): four in five announce 64 KiB, one in
// five 4 MiB. A client whose connection is closed (a 408) opens a new one at once. On SIGTERM it
// writes what happened to `statsFile` as JSON and exits.
//
//   node slow-crowd.js <port> <host header> <n> <statsFile>

import { writeFileSync } from 'node:fs';
import net from 'node:net';

const [port, host, n, statsFile] = [Number(process.argv[2]), process.argv[3] ?? '', Number(process.argv[4]), process.argv[5] ?? ''];
const PIECE = 'x'.repeat(70);
const PIECE_MS = 100;
const stats = { connections: 0, timeouts: 0, other: 0 };
let stopped = false;
const sockets = new Set<net.Socket>();

function client(i: number): void {
  if (stopped) return;
  const length = i % 5 === 4 ? 4 * 1024 * 1024 : 64 * 1024;
  const socket = net.connect(port, '127.0.0.1');
  stats.connections += 1;
  sockets.add(socket);
  let answered = false;
  socket.once('connect', () => socket.write(`POST /upload HTTP/1.1\r\nHost: ${host}\r\nContent-Type: application/octet-stream\r\nContent-Length: ${length}\r\n\r\n`));
  const timer = setInterval(() => {
    if (socket.writable) socket.write(PIECE);
  }, PIECE_MS);
  socket.on('data', (d: Buffer) => {
    if (answered) return;
    answered = true;
    if (d.toString('latin1').startsWith('HTTP/1.1 408')) stats.timeouts += 1;
    else stats.other += 1;
  });
  socket.on('error', () => undefined);
  socket.once('close', () => {
    clearInterval(timer);
    sockets.delete(socket);
    setTimeout(() => client(i), 10);
  });
}

for (let i = 0; i < n; i++) client(i);
process.stdout.write('READY 0\n');
process.on('SIGTERM', () => {
  stopped = true;
  for (const s of sockets) s.destroy();
  writeFileSync(statsFile, JSON.stringify(stats));
  process.exit(0);
});
