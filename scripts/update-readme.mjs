// Regenerates the README's configuration and error tables from the code, and copies in the last
// benchmark results (bench/RESULTS.md) if there are any (npm run docs). The unit tests
// fail when the README and the code disagree.
import { existsSync, readFileSync, writeFileSync } from 'node:fs';

const { configMarkdownTable } = await import('../dist/shared/config.js');
const { errorCatalog } = await import('../dist/shared/errors.js');

const errors = [
  '| Code | Status | Retry-After | Meaning |',
  '| --- | --- | --- | --- |',
  ...Object.entries(errorCatalog).map(([code, k]) => `| \`${code}\` | ${k.status} | ${k.retryable ? 'yes' : 'no'} | ${k.description} |`),
].join('\n');

const sections = [['config', configMarkdownTable()], ['errors', errors]];
const bench = new URL('../bench/RESULTS.md', import.meta.url);
if (existsSync(bench)) {
  // Without the file's own title; its sections become subsections of the README's.
  // Plots are linked from bench/, the README is one folder up.
  const text = readFileSync(bench, 'utf8').replace(/^# .*\n+/, '').replace(/^### /gm, '##### ').replace(/^## /gm, '#### ').replace(/\]\(results\//g, '](bench/results/').trim();
  sections.push(['bench', text]);
}

const file = new URL('../README.md', import.meta.url);
let readme = readFileSync(file, 'utf8');
for (const [name, table] of sections) {
  const re = new RegExp(`<!-- ${name}:start -->[\\s\\S]*?<!-- ${name}:end -->`);
  if (!re.test(readme)) throw new Error(`README.md has no ${name} markers`);
  readme = readme.replace(re, () => `<!-- ${name}:start -->\n${table}\n<!-- ${name}:end -->`);
}
writeFileSync(file, readme);
