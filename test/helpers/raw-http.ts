// Raw HTTP/1.1 over a socket: what a hostile client can send that undici will not (thousands of
// headers, two Hosts, absolute-form targets, forged hop headers).

import net from 'node:net';

/**
 * Writes `text` to the server at `url` and resolves with everything it answers until it closes the
 * connection. Written, not ended: a server that sees the client's end may drop its request, so
 * each request should say Connection: close and let the server end the exchange.
 */
export function rawRequest(url: string, text: string): Promise<string> {
  const { hostname, port } = new URL(url);
  return new Promise((resolve, reject) => {
    const socket = net.connect(Number(port), hostname, () => socket.write(text));
    let answer = '';
    socket.setEncoding('latin1');
    socket.on('data', (d: string) => (answer += d));
    socket.once('error', reject);
    socket.once('close', () => resolve(answer));
  });
}

/** rawRequest, with the answer's status, header block and body apart. */
export async function rawExchange(url: string, text: string): Promise<{ status: number; headers: string; body: string }> {
  const answer = await rawRequest(url, text);
  const split = answer.indexOf('\r\n\r\n');
  return { status: Number(answer.slice(9, 12)), headers: answer.slice(0, split), body: answer.slice(split + 4) };
}
