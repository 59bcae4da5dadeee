import { describe, expect, it } from 'vitest';
import type { ContainerEntry, ContainerState } from '../../src/cmdb/types.js';
import { chooseEntry, routingHost } from '../../src/proxy/routing.js';
import { newContainer } from '../helpers/specs.js';

const entry = (id: string, state: ContainerState, createdAt = 1, frozenAt: number | null = null): ContainerEntry => ({ ...newContainer('a', { id, state, createdAt, frozenAt }), rev: 1 });

describe('chooseEntry', () => {
  const cases: [string, ContainerEntry[], string][] = [
    ['no entries: register', [], 'register'],
    ['only draining: register', [entry('d', 'draining')], 'register'],
    ['one ready', [entry('r', 'ready')], 'r'],
    ['ready beats starting', [entry('s', 'starting'), entry('r', 'ready')], 'r'],
    ['ready beats registered', [entry('g', 'registered'), entry('r', 'ready')], 'r'],
    ['starting beats registered', [entry('g', 'registered', 0), entry('s', 'starting', 5)], 's'],
    ['oldest of the pending', [entry('new', 'registered', 9), entry('old', 'registered', 3)], 'old'],
    ['draining is never chosen', [entry('d', 'draining'), entry('g', 'registered')], 'g'],
    ['ready beats ready but frozen', [entry('f', 'ready', 1, 500), entry('r', 'ready')], 'r'],
    ['ready but frozen beats starting (a thaw is quicker than a start)', [entry('s', 'starting'), entry('f', 'ready', 1, 500)], 'f'],
  ];
  it.each(cases)('%s', (_name, entries, want) => {
    const d = chooseEntry(entries, () => 0);
    expect(d.kind === 'register' ? 'register' : d.entry.id).toBe(want);
  });

  it('spreads requests over the ready entries at random', () => {
    const entries = [entry('a', 'ready'), entry('b', 'ready'), entry('c', 'ready')];
    const picks = [0, 0.34, 0.67, 0.99].map((r) => {
      const d = chooseEntry(entries, () => r);
      return d.kind === 'forward' ? d.entry.id : '';
    });
    expect(picks).toEqual(['a', 'b', 'c', 'c']);
  });

  it('skips entries the caller cannot use', () => {
    const d = chooseEntry([entry('a', 'ready'), entry('b', 'starting')], () => 0, (e) => e.id !== 'a');
    expect(d.kind === 'forward' && d.entry.id).toBe('b');
  });
});

describe('routingHost', () => {
  it.each([
    ['Blog.Example.COM', 'blog.example.com'],
    ['blog.example.com:8080', 'blog.example.com'],
    ['blog.example.com.', 'blog.example.com'],
    ['[::1]:8080', '[::1]'],
    ['', undefined],
    [undefined, undefined],
  ])('%s -> %s', (header, want) => {
    expect(routingHost(header)).toBe(want);
  });
});
