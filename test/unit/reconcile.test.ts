import { describe, expect, it } from 'vitest';
import type { ContainerEntry, ContainerState } from '../../src/cmdb/types.js';
import { labelKeys, type RuntimeContainer } from '../../src/dispatcher/container-runtime.js';
import { deadHosts, planReconcile, type ReconcileAction } from '../../src/dispatcher/reconcile.js';
import { newContainer } from '../helpers/specs.js';

const entry = (id: string, state: ContainerState, runtimeId: string | null = null): ContainerEntry => ({ ...newContainer('a', { id, state, runtimeId }), rev: 1 });
const container = (id: string, entryId: string, running = true): RuntimeContainer => ({
  id, name: `fc-${entryId}`, labels: { [labelKeys.container]: entryId }, running, ip: '10.0.0.2', exitCode: running ? null : 0, pid: null,
});
const summary = (actions: ReconcileAction[]) =>
  actions.map((a) =>
    a.kind === 'adopt' ? `adopt ${a.entry.id}` : a.kind === 'remove' ? `remove ${a.container.id}` : a.kind === 'lost' || a.kind === 'unclaimed' ? `${a.kind} ${a.entryId}` : `${a.kind} ${a.entry.id}`,
  );

describe('planReconcile', () => {
  it('adopts running containers of ready and draining entries', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1'), container('r2', 'e2')],
      entries: [entry('e1', 'ready', 'r1'), entry('e2', 'draining', 'r2')],
      tracked: new Map(),
    });
    expect(summary(actions)).toEqual(['adopt e1', 'adopt e2']);
  });

  it('removes containers nobody wants and resets entries without a container', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'gone-entry'), container('r2', 'e2', false), container('r3', 'e3'), container('r4', 'e4')],
      entries: [entry('e2', 'ready', 'r2'), entry('e3', 'registered'), entry('e4', 'starting'), entry('e5', 'ready', 'rX'), entry('e6', 'draining', 'rY')],
      tracked: new Map(),
    });
    expect(summary(actions)).toEqual(['remove r1', 'remove r2', 'remove r3', 'remove r4', 'reset e2', 'reset e4', 'reset e5', 'forget e6']);
  });

  it('leaves what the dispatcher tracks alone, but removes an older container of a tracked entry', () => {
    const actions = planReconcile({
      runtime: [container('new', 'e1'), container('old', 'e1'), container('creating', 'e2')],
      entries: [entry('e1', 'ready', 'new'), entry('e2', 'starting')],
      tracked: new Map<string, string | null>([['e1', 'new'], ['e2', null]]),
    });
    expect(summary(actions)).toEqual(['remove old']);
  });

  it('gives up tracked containers that stopped running or vanished, but not those in flux', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1', false), container('r3', 'e3', false)],
      entries: [entry('e1', 'ready', 'r1'), entry('e2', 'ready', 'r2'), entry('e3', 'starting')],
      tracked: new Map<string, string | null>([['e1', 'r1'], ['e2', 'r2'], ['e3', null]]),
    });
    expect(summary(actions)).toEqual(['lost e1', 'lost e2']);
  });

  it('adopts one container per entry and removes a second one', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1'), container('r2', 'e1')],
      entries: [entry('e1', 'ready', null)],
      tracked: new Map(),
    });
    expect(summary(actions)).toEqual(['adopt e1', 'remove r2']);
  });
});

describe('planReconcile after the CMDB lost entries or writes', () => {
  it('drains a container it serves from whose entry no longer exists (the CMDB restarted empty)', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1'), container('r2', 'e2')],
      entries: [entry('e2', 'ready', 'r2')],
      tracked: new Map<string, string | null>([['e1', 'r1'], ['e2', 'r2']]),
      settled: new Set(['e1', 'e2']),
    });
    expect(summary(actions)).toEqual(['unclaimed e1']);
  });

  it('leaves a container alone whose entry may be newer than the read (not served from before it)', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1')],
      entries: [],
      tracked: new Map<string, string | null>([['e1', 'r1']]),
      settled: new Set(),
    });
    expect(summary(actions)).toEqual([]);
  });

  it('confirms as ready an entry left starting because its ready write was lost', () => {
    const actions = planReconcile({
      runtime: [container('r1', 'e1')],
      entries: [entry('e1', 'starting')],
      tracked: new Map<string, string | null>([['e1', 'r1']]),
      settled: new Set(['e1']),
    });
    expect(summary(actions)).toEqual(['confirm e1']);
  });
});

describe('deadHosts', () => {
  const host = (id: string, heartbeatAt: number) => ({ id, dispatcherUrl: '', capacity: 1, startedAt: 0, heartbeatAt, rev: 1 });
  it('names hosts silent for longer than the limit, never this one', () => {
    expect(deadHosts([host('old', 0), host('fresh', 59_000), host('self', 0)], 61_000, 60_000, 'self')).toEqual(['old']);
  });

  it('does not count the time the CMDB was away: after an outage every host gets the limit again', () => {
    // Heartbeats at 0 and 50 s; the CMDB away from 55 s to 155 s; at 160 s the first is 60 s old
    // counting only CMDB time (55 + 5), the second 10 s.
    const outages = [{ from: 55_000, to: 155_000 }];
    expect(deadHosts([host('a', 0), host('b', 50_000)], 160_000, 60_000, 'self', outages)).toEqual([]);
    expect(deadHosts([host('a', 0), host('b', 50_000)], 161_000, 60_000, 'self', outages)).toEqual(['a']);
    // Without the outage record both would have gone at once.
    expect(deadHosts([host('a', 0), host('b', 50_000)], 160_000, 60_000, 'self')).toEqual(['a', 'b']);
  });
});
