// Two dispatchers with one host id: the second, started by mistake while the first runs, must
// refuse to start having touched nothing: no container removed, no entry reset, no sandbox taken.
// Both share one engine (a fake runtime: containers are HTTP servers in this process) and one CMDB.

import { afterEach, describe, expect, it } from 'vitest';
import { startStack } from '../../src/cli/stack.js';
import { labelKeys } from '../../src/dispatcher/container-runtime.js';
import { FcError } from '../../src/shared/errors.js';
import { silentLogger } from '../../src/shared/logger.js';
import { FakeRuntime } from '../helpers/fake-runtime.js';
import { startTestStack, type TestStack } from '../helpers/stack.js';
import { eventually } from '../helpers/wait.js';

let t: TestStack | undefined;

afterEach(async () => {
  await t?.cleanup();
  t = undefined;
});

describe('host id lease', () => {
  it('a second dispatcher with a host id in use refuses to start and leaves the first one\'s containers alone', async () => {
    const runtime = new FakeRuntime();
    // Entries must not change of themselves while the test compares them: `ready` never freezes,
    // and `slow` stays starting until well after the comparison (destroy() halts it if the test fails).
    runtime.images.set('slow', { listenAfterMs: 15_000 });
    t = await startTestStack({ runtime, env: { FC_HEARTBEAT_INTERVAL: '200ms' } });
    const s = t;
    expect((await s.api('POST', '/v1/apps', { name: 'ready', hostnames: ['ready.test'], image: 'fastcontainer/hello', freezeAfter: 0 })).status).toBe(201);
    expect((await s.api('POST', '/v1/apps', { name: 'slow', hostnames: ['slow.test'], image: 'slow' })).status).toBe(201);
    expect((await s.get('ready.test')).status).toBe(200);
    // A container still starting when the second dispatcher comes: the one it would have removed.
    const slow = s.get('slow.test');
    // Awaited at the end; handled now, so a failure before then is reported as that failure.
    slow.catch(() => undefined);
    await eventually(() => [...runtime.containers.values()].some((c) => c.spec.labels[labelKeys.app] === 'slow'), { what: 'the slow container to be created' });
    const containersBefore = [...runtime.containers.keys()].sort();
    const entriesBefore = (await s.stack.store.listContainers()).map((e) => `${e.id}:${e.state}:${e.rev}`).sort();

    const err = await startStack({ config: s.config, roles: ['dispatcher'], logger: silentLogger, runtime }).then(
      async (second) => {
        await second.destroy();
        return undefined;
      },
      (e: unknown) => e,
    );
    expect(err).toBeInstanceOf(FcError);
    expect((err as FcError).code).toBe('FC_ERR_HOST_ID_TAKEN');

    expect([...runtime.containers.keys()].sort()).toEqual(containersBefore);
    expect([...runtime.containers.values()].filter((c) => c.spec.labels[labelKeys.app] === 'ready').map((c) => c.running)).toEqual([true]);
    expect((await s.stack.store.listContainers()).map((e) => `${e.id}:${e.state}:${e.rev}`).sort()).toEqual(entriesBefore);
    expect((await s.get('ready.test')).status).toBe(200);
    expect((await slow).status).toBe(200);
  });

  it('the next dispatcher of a host id starts at once after a clean stop (the lease is given up)', async () => {
    const runtime = new FakeRuntime();
    t = await startTestStack({ runtime, roles: ['coreapi', 'proxy'] });
    const s = t;
    const first = await startStack({ config: s.config, roles: ['dispatcher'], logger: silentLogger, runtime });
    await first.close();
    const second = await startStack({ config: s.config, roles: ['dispatcher'], logger: silentLogger, runtime });
    expect(second.dispatcher).toBeDefined();
    await second.close();
  });
});
