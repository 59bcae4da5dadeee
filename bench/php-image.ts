// The PHP image before and after it gained WordPress's extensions (issue 9: php-mysql, php-gd,
// php-curl, php-xml, php-mbstring, php-zip, php-intl, and mod_remoteip): its size, and its cold
// start side by side in one run. The "before" image is built from images/php as it was at
// FC_BENCH_PHP_BEFORE_COMMIT (d8d5256, the last commit before them), written out to a temporary
// directory and built by scripts/build-images.sh under a tag of its own
// (FASTCONTAINER_IMAGES_DIR=<dir> build-images.sh php --tag fastcontainer-bench/php-before), so
// the shared fastcontainer/php is never touched. Paths, FC_BENCH_PHP_RUNS (15) times each, taking
// turns in a rotating order after one start of each that is not timed:
//   fastcontainer  the first request of a newly registered app through `fastcontainer up`
//                  (default spec: 0.5 core, 256 MiB; freezeAfter 0; network sandboxes on, let
//                  refill between starts), timed from sending to the first byte; the app is then
//                  deleted and the next start waits until its container is gone from the engine;
//   engine         the engine's own create + start + first answer of a container with the
//                  dispatcher's limits, on the default bridge; and the same joining a network
//                  namespace made before the clock starts (making one varies more from start to
//                  start than the images do).
// Every container the benchmark makes itself carries its labels (and `fastcontainer up` labels
// its own with its host id); only those are removed at the end, and the before-image too unless
// FC_BENCH_KEEP_BEFORE_IMAGE=1 (a kept one is reused by the next run if its sources match).

import { execFile, spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import os from 'node:os';
import path from 'node:path';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import Docker from 'dockerode';
import { startFastcontainer, type Fastcontainer } from './lib/fastcontainer.js';
import { answerAt, ipOf, poolRefilled, sandboxHits } from './lib/first-answer.js';
import { markdownTable } from './lib/load.js';
import { fmt } from './lib/report.js';
import { quantile } from './lib/timeline.js';
import { failureText, timedGet, type Timed } from './lib/timed-get.js';

const execFileP = promisify(execFile);
const docker = new Docker({ socketPath: '/var/run/docker.sock' });
/** The repository (dist-bench/bench/ is two folders down). */
const root = fileURLToPath(new URL('../../', import.meta.url));

const AFTER = 'fastcontainer/php';
const BEFORE = 'fastcontainer-bench/php-before';
const POOL = 2;
const GONE_DEADLINE_MS = 60_000;
/** Each run's containers: the benchmark's label, and one of the run's own for the clean-up. */
const RUN_ID = randomBytes(4).toString('hex');
const labels = (role: string) => ({ 'fastcontainer.bench': 'php-image', 'fastcontainer.bench.run': RUN_ID, 'fastcontainer.bench.role': role });
/** The dispatcher's limits for an app with the default spec (src/cmdb/app-defaults.ts, FC_PIDS_LIMIT). */
const hostConfig = { CpuPeriod: 100_000, CpuQuota: 50_000, Memory: 256 * 1024 * 1024, MemorySwap: 256 * 1024 * 1024, PidsLimit: 256, CapDrop: ['ALL'], SecurityOpt: ['no-new-privileges'] };

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));
const log = (s: string) => process.stderr.write(`[bench]   ${s}\n`);

/**
 * images/php at `commit` in a directory of its own, as build-images.sh wants it: the files of that
 * commit, and an empty `packages` list where the commit had none (the script now asks for one).
 */
async function writeOldSources(commit: string): Promise<string> {
  const dir = mkdtempSync(path.join(os.tmpdir(), 'fcbench-php-before-'));
  const php = path.join(dir, 'php');
  mkdirSync(php);
  const { stdout } = await execFileP('git', ['-C', root, 'ls-tree', commit, 'images/php/']);
  const files = stdout.trim().split('\n').filter((l) => l !== '');
  if (files.length === 0) throw new Error(`commit ${commit} has no images/php/`);
  for (const line of files) {
    // "<mode> blob <sha>\t<path>"
    const [meta, file] = line.split('\t') as [string, string];
    if (!meta.includes(' blob ')) continue;
    const { stdout: body } = await execFileP('git', ['-C', root, 'show', `${commit}:${file}`], { encoding: 'buffer', maxBuffer: 16 * 1024 * 1024 });
    const target = path.join(php, path.basename(file));
    writeFileSync(target, body);
    chmodSync(target, meta.startsWith('100755') ? 0o755 : 0o644);
  }
  if (!existsSync(path.join(php, 'packages'))) writeFileSync(path.join(php, 'packages'), `# none: images/php at ${commit} installed only Apache, mod_php and ca-certificates\n`);
  return dir;
}

/** build-images.sh php --tag BEFORE from `sourcesDir`; it skips an image built from the same sources. */
async function buildBefore(sourcesDir: string): Promise<void> {
  const child = spawn('bash', [path.join(root, 'scripts/build-images.sh'), 'php', '--tag', BEFORE], {
    env: { ...process.env, FASTCONTAINER_IMAGES_DIR: sourcesDir },
    stdio: ['ignore', 'inherit', 'inherit'],
  });
  const code = await new Promise<number | null>((resolve) => child.once('exit', resolve));
  if (code !== 0) throw new Error(`scripts/build-images.sh php --tag ${BEFORE} exited with ${code}`);
}

interface ImageFacts {
  /** bytes, `docker image inspect` .Size */
  size: number;
  /** the label build-images.sh sets: extra Debian packages */
  packages: string;
  /** `php -m`: the PHP modules compiled in or loaded */
  phpModules: number;
}

async function imageFacts(image: string): Promise<ImageFacts> {
  const info = await docker.getImage(image).inspect();
  const args = ['run', '--rm', '--network', 'none', ...Object.entries(labels('facts')).flatMap(([k, v]) => ['--label', `${k}=${v}`]), '--entrypoint', 'php', image, '-m'];
  const { stdout } = await execFileP('docker', args, { timeout: 60_000 });
  const phpModules = new Set(stdout.split('\n').map((l) => l.trim()).filter((l) => l !== '' && !l.startsWith('['))).size;
  return { size: info.Size, packages: info.Config.Labels?.['fastcontainer.packages'] ?? '', phpModules };
}

/**
 * The engine alone: create + start + the first 200 on port 8080 of a container of `image`; with
 * `sandboxed`, the container joins a network namespace made before the clock starts (a sleeping
 * busybox, as the dispatcher's sandboxes are), so that making one is not in the time.
 */
async function engineStart(image: string, sandboxed: boolean): Promise<Timed> {
  let sandbox: Docker.Container | null = null;
  if (sandboxed) {
    sandbox = await docker.createContainer({
      Image: 'fastcontainer/hello', Entrypoint: ['/bin/busybox', 'sleep', '600'], Cmd: [], User: '65534:65534', Labels: labels('sandbox'),
      HostConfig: { ...hostConfig, CpuQuota: 1000, Memory: 16 * 1024 * 1024, MemorySwap: 16 * 1024 * 1024, PidsLimit: 4 },
    });
  }
  let c: Docker.Container | null = null;
  try {
    let ip: string | null = null;
    if (sandbox !== null) {
      await sandbox.start();
      ip = await ipOf(sandbox);
    }
    const t0 = performance.now();
    try {
      c = await docker.createContainer({ Image: image, Labels: labels('engine'), HostConfig: sandbox === null ? hostConfig : { ...hostConfig, NetworkMode: `container:${sandbox.id}` } });
      await c.start();
      await answerAt(ip ?? (await ipOf(c)), 8080, 60_000);
      return { ms: performance.now() - t0, status: 200, error: null };
    } catch (err) {
      return { ms: performance.now() - t0, status: 0, error: String(err) };
    }
  } finally {
    await c?.remove({ force: true });
    await sandbox?.remove({ force: true });
  }
}

async function appContainers(fc: Fastcontainer, app: string): Promise<number> {
  return (await docker.listContainers({ all: true, filters: { label: [`fastcontainer.app=${app}`, `fastcontainer.host=${fc.hostId}`] } })).length;
}

let appSeq = 0;
/** The first request of a new app on `image`; the app is deleted and its container waited out. */
async function appStart(fc: Fastcontainer, image: string): Promise<Timed> {
  const name = `php${(appSeq += 1)}`;
  await fc.api('POST', '/v1/apps', { name, hostnames: [`${name}.bench`], image, autoscale: false, maxContainers: 1, freezeAfter: 0 });
  const t = await timedGet(fc, `${name}.bench`);
  await fc.api('DELETE', `/v1/apps/${name}`);
  const t0 = Date.now();
  while ((await appContainers(fc, name)) > 0) {
    if (Date.now() - t0 > GONE_DEADLINE_MS) {
      log(`warning: the container of ${name} was still in the engine ${GONE_DEADLINE_MS / 1000} s after DELETE`);
      break;
    }
    await sleep(50);
  }
  await poolRefilled(fc, POOL);
  return t;
}

const ratio = (a: number, b: number) => (b > 0 ? (a / b).toFixed(2) : '-');

export async function benchPhpImage(): Promise<string> {
  const runs = Number(process.env.FC_BENCH_PHP_RUNS ?? 15);
  const commit = process.env.FC_BENCH_PHP_BEFORE_COMMIT ?? 'd8d5256';
  const keep = process.env.FC_BENCH_KEEP_BEFORE_IMAGE === '1';
  if (!Number.isInteger(runs) || runs < 1 || runs > 200) throw new Error(`FC_BENCH_PHP_RUNS=${process.env.FC_BENCH_PHP_RUNS}: a whole number from 1 to 200`);
  await docker.getImage(AFTER).inspect(); // built by setup (scripts/bench.sh runs it)

  let sources: string | undefined;
  let fc: Fastcontainer | undefined;
  try {
    sources = await writeOldSources(commit);
    log(`building ${BEFORE} from images/php of ${commit}...`);
    await buildBefore(sources);
    const facts = { before: await imageFacts(BEFORE), after: await imageFacts(AFTER) };

    fc = await startFastcontainer({ env: { FC_SANDBOX_POOL: String(POOL) } });
    const stack = fc;
    await poolRefilled(stack, POOL);
    type Key = 'appBefore' | 'appAfter' | 'engineBefore' | 'engineAfter' | 'sandboxBefore' | 'sandboxAfter';
    const steps: [Key, () => Promise<Timed>][] = [
      ['appBefore', () => appStart(stack, BEFORE)],
      ['appAfter', () => appStart(stack, AFTER)],
      ['engineBefore', () => engineStart(BEFORE, false)],
      ['engineAfter', () => engineStart(AFTER, false)],
      ['sandboxBefore', () => engineStart(BEFORE, true)],
      ['sandboxAfter', () => engineStart(AFTER, true)],
    ];
    // One start of each, not timed: the images' files in the page cache, the engine warmed up.
    for (const [, run] of steps) await run();
    const times: Record<Key, Timed[]> = { appBefore: [], appAfter: [], engineBefore: [], engineAfter: [], sandboxBefore: [], sandboxAfter: [] };
    for (let i = 0; i < runs; i++) {
      log(`round ${i + 1}/${runs}`);
      // Taking turns, in a rotating order, so drift on the machine touches every path alike.
      for (let k = 0; k < steps.length; k++) {
        const [key, run] = steps[(i + k) % steps.length] as (typeof steps)[number];
        times[key].push(await run());
      }
    }
    const { hits, starts } = await sandboxHits(stack);

    const okMs = (ts: Timed[]) => ts.filter((t) => t.status === 200).map((t) => t.ms);
    const q = (ts: Timed[], p: number) => { const xs = okMs(ts); return xs.length === 0 ? NaN : quantile(xs, p); };
    const mb = (b: number) => fmt(b / 1e6);
    const row = (label: string, image: string, ts: Timed[], before: Timed[] | null) => {
      const xs = okMs(ts);
      return [label, image, fmt(q(ts, 0.5)), fmt(q(ts, 0.9)), fmt(xs.length ? Math.min(...xs) : NaN), fmt(xs.length ? Math.max(...xs) : NaN), before === null ? '1.00' : ratio(q(ts, 0.5), q(before, 0.5)), before === null ? '1.00' : ratio(q(ts, 0.9), q(before, 0.9)), failureText(ts)];
    };
    const diff = (a: Timed[], b: Timed[]) => fmt(q(a, 0.5) - q(b, 0.5));
    const spread = (ts: Timed[]) => { const xs = okMs(ts); return xs.length === 0 ? '-' : `${fmt(Math.min(...xs))}-${fmt(Math.max(...xs))}`; };
    return [
      `Both images side by side in one run: **before**, \`${BEFORE}\`, built by \`scripts/build-images.sh\` from \`images/php\` of commit ${commit} (Apache, mod_php, ca-certificates; written out to a temporary directory, \`FASTCONTAINER_IMAGES_DIR=<dir> scripts/build-images.sh php --tag ${BEFORE}\`); **after**, \`${AFTER}\` as it is now (plus ${facts.after.packages.split(' ').filter((p) => p !== '').length} PHP extension packages and mod_remoteip configured). Built by today's script, the before-image also has mod_remoteip loaded (an Apache module that comes with apache2; with no \`RemoteIP*\` directive it does nothing); its files and packages are those of ${commit}.`,
      '',
      markdownTable(
        ['image', 'size MB (`docker image inspect` .Size)', 'PHP modules (`php -m`)', 'extra Debian packages'],
        [
          [`before: \`${BEFORE}\``, mb(facts.before.size), facts.before.phpModules, facts.before.packages === '' ? 'none' : facts.before.packages],
          [`after: \`${AFTER}\``, mb(facts.after.size), facts.after.phpModules, facts.after.packages === '' ? 'none' : facts.after.packages],
          ['ratio after/before', ratio(facts.after.size, facts.before.size), ratio(facts.after.phpModules, facts.before.phpModules), ''],
        ],
      ),
      '',
      `Cold start, the image's default page (\`index.php\`): ${runs} starts per path and image, taking turns in a rotating order after one start of each that is not timed. **fastcontainer**: \`fastcontainer up\`, a new app per start (default spec: 0.5 core, 256 MiB, pids 256; freezeAfter 0), its first request timed from sending to the first byte, then the app deleted and its container waited out; the dispatcher keeps ${POOL} network sandboxes made ahead of need and is let refill them between starts (${hits} of ${starts} starts, the untimed ones included, found one ready). **engine**: the engine's own create + start + first answer (200 on port 8080) of a container with the same limits, every capability dropped, no-new-privileges, on the default bridge; and the same joining a network namespace made before the clock starts (as the dispatcher's sandboxes do), which leaves making one and joining it to the bridge out of the time (the rows on the bridge range over ${spread(times.engineBefore)} ms before and ${spread(times.engineAfter)} ms after), so that mostly the image's own start is left.`,
      '',
      markdownTable(
        ['path', 'image', `p50 ms (n=${runs})`, 'p90 ms', 'min ms', 'max ms', 'p50 after/before', 'p90 after/before', 'failed'],
        [
          row('fastcontainer: first request of a new app', 'before', times.appBefore, null),
          row('fastcontainer: first request of a new app', 'after', times.appAfter, times.appBefore),
          row('engine: create + start + first answer', 'before', times.engineBefore, null),
          row('engine: create + start + first answer', 'after', times.engineAfter, times.engineBefore),
          row('engine: the same, joining a network namespace made beforehand', 'before', times.sandboxBefore, null),
          row('engine: the same, joining a network namespace made beforehand', 'after', times.sandboxAfter, times.sandboxBefore),
        ],
      ),
      '',
      `After minus before, at p50: ${diff(times.appAfter, times.appBefore)} ms through fastcontainer, ${diff(times.engineAfter, times.engineBefore)} ms on the engine alone, ${diff(times.sandboxAfter, times.sandboxBefore)} ms on the engine in a namespace made beforehand.`,
    ].join('\n');
  } finally {
    await fc?.stop();
    for (const c of await docker.listContainers({ all: true, filters: { label: [`fastcontainer.bench.run=${RUN_ID}`] } })) await docker.getContainer(c.Id).remove({ force: true }).catch(() => undefined);
    if (sources !== undefined) rmSync(sources, { recursive: true, force: true });
    if (keep) log(`kept ${BEFORE} (FC_BENCH_KEEP_BEFORE_IMAGE=1)`);
    else await docker.getImage(BEFORE).remove().then(() => log(`removed ${BEFORE}`), (err: unknown) => log(`${BEFORE} not removed: ${String(err)}`));
  }
}
