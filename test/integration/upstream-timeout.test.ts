// An app slower than its upstream timeout gets 504 from the dispatcher that forwards to its
// container, and the request is not sent again (issue 8). The whole stack in process (the proxy
// calls its dispatcher directly, as `fastcontainer up` does) on the fake runtime, whose
// "containers" are HTTP servers in this process, so the test counts what reaches them.

import { afterEach, describe, expect, it } from 'vitest';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';

let t: TestStack | undefined;
let runtime: FakeRuntime;

async function stack(env: Record<string, string> = {}): Promise<TestStack> {
  runtime = new FakeRuntime();
  t = await startTestStack({ store: 'memory', runtime, env });
  return t;
}

afterEach(async () => {
  await t?.cleanup();
  await runtime?.close();
  t = undefined;
});

/** Requests that reached the app's one container from now on. */
function countRequests(): () => number {
  const [c] = [...runtime.containers.values()].filter((x) => x.running);
  let n = 0;
  c?.server?.on('request', () => (n += 1));
  return () => n;
}

describe('the upstream timeout', () => {
  it('answers 504 past the app\'s upstreamTimeout, and sends the request once', async () => {
    const s = await stack();
    runtime.images.set('sluggish', { requestMs: 2_500 });
    const created = await s.api('POST', '/v1/apps', { name: 'sluggish', hostnames: ['sluggish.test'], image: 'sluggish', upstreamTimeout: 1 });
    expect(created.status, JSON.stringify(created.body)).toBe(201);
    expect(created.body).toMatchObject({ upstreamTimeout: 1, maxConcurrency: null });
    const first = await s.get('sluggish.test');
    expect(first.status).toBe(504);
    const seen = countRequests();
    const res = await s.get('sluggish.test');
    expect(res.status).toBe(504);
    expect(JSON.parse(res.body).code).toBe('FC_ERR_UPSTREAM_TIMEOUT');
    expect(seen()).toBe(1);
  });

  it('takes FC_UPSTREAM_TIMEOUT for an app without one, and a changed upstreamTimeout at once', async () => {
    const s = await stack({ FC_UPSTREAM_TIMEOUT: '1s' });
    runtime.images.set('sluggish', { requestMs: 2_000 });
    expect((await s.api('POST', '/v1/apps', { name: 'plain', hostnames: ['plain.test'], image: 'sluggish' })).status).toBe(201);
    expect((await s.get('plain.test')).status).toBe(504);
    const patched = await s.api('PATCH', '/v1/apps/plain', { upstreamTimeout: 10 });
    expect(patched.status, JSON.stringify(patched.body)).toBe(200);
    // The dispatcher reads the app from its cache, which hears of the change within moments.
    let res = await s.get('plain.test');
    for (let i = 0; i < 20 && res.status === 504; i++) res = await s.get('plain.test');
    expect(res.status).toBe(200);
  });

  it('refuses upstreamTimeout and maxConcurrency values out of range, naming the field', async () => {
    const s = await stack();
    for (const [field, value] of [['upstreamTimeout', 0], ['upstreamTimeout', 3601], ['upstreamTimeout', '2h'], ['upstreamTimeout', '30'], ['maxConcurrency', 0], ['maxConcurrency', 1.5]] as const) {
      const res = await s.api('POST', '/v1/apps', { name: 'bad', hostnames: ['bad.test'], image: 'fastcontainer/hello', [field]: value });
      expect(res.status).toBe(400);
      expect(res.body).toMatchObject({ code: 'FC_ERR_INVALID_FIELD', field, value });
    }
    // A duration with its unit is taken, as the server's own duration options are, and stored in seconds.
    const ok = await s.api('POST', '/v1/apps', { name: 'good', hostnames: ['good.test'], image: 'fastcontainer/hello', upstreamTimeout: '30s' });
    expect(ok.status).toBe(201);
    expect(ok.body).toMatchObject({ upstreamTimeout: 30 });
  });
});
