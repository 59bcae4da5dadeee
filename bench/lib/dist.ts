// The build under test, as modules: dist/ next to the bin that `startFastcontainer` runs (the
// repository's, or FC_BENCH_BIN's, e.g. a copy of the last commit's build). Benchmarks that work
// on the CMDB directly load it from there rather than from their own compiled copy of src/, so
// they measure the same build as the CLI, Lua scripts included.

import { fileURLToPath, pathToFileURL } from 'node:url';
import path from 'node:path';

export type CmdbModule = typeof import('../../src/cmdb/index.js');
export type ProxyModule = typeof import('../../src/proxy/index.js');
export type StackModule = typeof import('../../src/cli/stack.js');
export type ConfigModule = typeof import('../../src/shared/config.js');
export type LoggerModule = typeof import('../../src/shared/logger.js');

/** dist/ of the build under test. */
export function distDir(): string {
  const bin = process.env.FC_BENCH_BIN ?? fileURLToPath(new URL('../../../bin/fastcontainer.js', import.meta.url));
  return path.resolve(path.dirname(bin), '../dist');
}

export async function importDist<T>(module: string): Promise<T> {
  return (await import(pathToFileURL(path.join(distDir(), module)).href)) as T;
}
