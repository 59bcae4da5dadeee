#!/usr/bin/env node
// The `fastcontainer` command. The TypeScript sources are built into dist/ by `npm run build`
// (scripts/setup.sh does it).
import { existsSync } from 'node:fs';

const entry = new URL('../dist/cli/main.js', import.meta.url);
if (!existsSync(entry)) {
  process.stderr.write('fastcontainer: dist/ is missing; build first with `npm run build` (or run `bash scripts/setup.sh`)\n');
  process.exit(2);
}
const { main } = await import(entry.href);
process.exitCode = await main(process.argv.slice(2));
