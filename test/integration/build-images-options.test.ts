// scripts/build-images.sh's variant options (--tag, --packages): what it refuses before it builds
// anything (names that are not image names or Debian package names never reach docker or
// mmdebstrap), and that the stock PHP image carries what WordPress needs. Building a variant takes
// a minute or more, so it is not done here: docs/wordpress.md records the run.

import { execFile } from 'node:child_process';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { describe, expect, it } from 'vitest';
import { docker } from '../helpers/docker.js';

const script = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../../scripts/build-images.sh');
const execFileP = promisify(execFile);

async function build(...args: string[]): Promise<{ code: number; out: string }> {
  try {
    const { stdout, stderr } = await execFileP('bash', [script, ...args], { timeout: 30_000 });
    return { code: 0, out: stdout + stderr };
  } catch (err) {
    const e = err as { code: number; stdout: string; stderr: string };
    return { code: e.code, out: e.stdout + e.stderr };
  }
}

describe('build-images.sh --tag / --packages', () => {
  it('documents both in --help', async () => {
    const { code, out } = await build('--help');
    expect(code).toBe(0);
    expect(out).toContain('--tag NAME');
    expect(out).toContain('--packages');
    expect(out).toContain('php --tag myorg/php-extra --packages "php-redis php-imagick"');
  });

  it.each([
    [['php', '--tag', 'My Org/PHP'], /is not an image name/],
    [['php', '--tag', 'myorg/php;touch /tmp/x'], /is not an image name/],
    [['php', '--tag', '--force'], /is not an image name/],
    [['php', 'static', '--tag', 'myorg/x'], /--tag names one image/],
    [['--tag', 'myorg/x'], /--tag names one image/],
    [['php', '--packages', 'php-redis;rm -rf /'], /is not a Debian package name/],
    [['php', '--packages', '--allow-unauthenticated'], /is not a Debian package name/],
    [['php', '--packages', 'php-redis,evil'], /is not a Debian package name/],
    [['hello', '--packages', 'php-redis'], /applies to php and static/],
    [['php', '--tag'], /needs an image name/],
  ])('refuses %j before building anything', async (args, message) => {
    const { code, out } = await build(...args);
    expect(code).toBe(1);
    expect(out).toMatch(message);
    expect(out).not.toContain('building');
  });

  it('has built fastcontainer/php with the PHP extensions WordPress needs and mod_remoteip', async () => {
    const info = await docker.getImage('fastcontainer/php').inspect();
    expect(info.Config.Labels?.['fastcontainer.packages']).toBe('php-curl php-gd php-intl php-mbstring php-mysql php-xml php-zip');
    expect(info.Config.User).toBe('www-data');
    expect(Object.keys(info.Config.ExposedPorts ?? {})).toEqual(['8080/tcp']);
    const { stdout } = await execFileP('docker', ['run', '--rm', '--label', 'fastcontainer.test=build-images', '--network', 'none', '--entrypoint', 'sh', 'fastcontainer/php', '-c', 'php -m; apache2ctl -M 2>/dev/null']);
    for (const ext of ['mysqli', 'gd', 'curl', 'dom', 'mbstring', 'zip', 'intl', 'remoteip_module', 'php_module', 'mpm_prefork_module']) {
      expect(stdout).toContain(ext);
    }
  }, 60_000);
});
