import { describe, expect, it } from 'vitest';
import { formatDuration, specFromFlags } from '../../src/cli/main.js';

describe('formatDuration', () => {
  it.each([[0, '0s'], [59_999, '59s'], [61_000, '1m01s'], [3_600_000, '1h00m'], [49 * 3_600_000, '2d01h']] as const)('%d ms', (ms, want) => {
    expect(formatDuration(ms)).toBe(want);
  });
});

describe('specFromFlags', () => {
  it('builds an app spec from `app create` flags', () => {
    const spec = specFromFlags('blog', {
      hostname: ['blog.test', 'www.blog.test'], image: 'fastcontainer/php', port: '8080', cpus: '0.3', memory: '256m',
      env: ['A=1', 'B=x=y'], volume: ['/srv/blog:/var/www/html:ro'], lifespan: '600', min: '0', max: '4', command: '["php","-S","0.0.0.0:8080"]',
    });
    expect(spec).toEqual({
      name: 'blog', hostnames: ['blog.test', 'www.blog.test'], image: 'fastcontainer/php', port: 8080, cpus: 0.3, memory: '256m',
      env: { A: '1', B: 'x=y' }, volumes: ['/srv/blog:/var/www/html:ro'], lifespan: 600, minContainers: 0, maxContainers: 4,
      command: ['php', '-S', '0.0.0.0:8080'],
    });
  });

  it('makes relative volume paths absolute and passes bad numbers on for the API to name', () => {
    const spec = specFromFlags('blog', { volume: ['site:/var/www/html'], cpus: 'lots' });
    expect(spec.volumes).toEqual([`${process.cwd()}/site:/var/www/html`]);
    expect(spec.cpus).toBe('lots');
  });
});
