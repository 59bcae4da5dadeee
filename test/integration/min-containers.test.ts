// minContainers is kept when an app is created or changed, not at the dispatchers' next periodic
// check: with the periodic check (the one-second interval) and reconciliation never firing, the
// app's change alone must bring its containers. Whole stack, embedded CMDB, fake runtime.

import { afterEach, describe, expect, it } from 'vitest';
import type { ContainerEntry } from '../../src/cmdb/types.js';
import { systemClock, type Clock } from '../../src/shared/clock.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

/** MINIMUM_TICK_MS in dispatcher.ts: the periodic minContainers check, silenced here. */
const MINIMUM_TICK_MS = 1_000;

/** The system clock, but intervals of the periodic minimum check never fire. */
const withoutMinimumTick: Clock = {
  ...systemClock,
  setInterval: (fn, ms) => (ms === MINIMUM_TICK_MS ? { cancel: () => {} } : systemClock.setInterval(fn, ms)),
};

let t: TestStack | undefined;
let runtime: FakeRuntime | undefined;

afterEach(async () => {
  await t?.cleanup();
  await runtime?.close();
  t = undefined;
});

async function live(s: TestStack, app: string): Promise<ContainerEntry[]> {
  return ((await s.api('GET', `/v1/apps/${app}/containers`)).body.containers as ContainerEntry[]).filter((e) => e.state !== 'draining');
}

describe('minContainers on an app\'s change', () => {
  it('starts the minimum when the app is created and when its minimum is raised, without the periodic check', async () => {
    runtime = new FakeRuntime();
    // Reconciliation (which also keeps the minimum) at its longest: it does not come during the test.
    t = await startTestStack({ store: 'memory', runtime, clock: withoutMinimumTick, env: { FC_RECONCILE_INTERVAL: '600s' } });
    const s = t;
    expect((await s.api('POST', '/v1/apps', { name: 'kept', hostnames: ['kept.test'], image: 'fastcontainer/hello', minContainers: 1, maxContainers: 3 })).status).toBe(201);
    await eventually(async () => (await live(s, 'kept')).filter((e) => e.state === 'ready').length === 1, { timeout: 5_000, what: 'one ready container after the creation' });
    expect((await s.api('PATCH', '/v1/apps/kept', { minContainers: 2 })).status).toBe(200);
    await eventually(async () => (await live(s, 'kept')).filter((e) => e.state === 'ready').length === 2, { timeout: 5_000, what: 'two ready containers after the change' });
    expect(await live(s, 'kept')).toHaveLength(2);
  });
});
