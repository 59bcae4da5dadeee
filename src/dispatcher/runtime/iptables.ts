// Applies a Ruleset (network-isolation.ts) with the iptables tools: our chains are replaced
// wholesale and atomically by `iptables-restore --noflush` (a declared chain is emptied first, so
// applying twice gives the same rules, and a restarted dispatcher simply writes the truth again);
// the jumps into them are checked (-C) and inserted first (-I) only if missing, so other rules in
// DOCKER-USER, INPUT and FORWARD are never touched. Removal deletes exactly our jumps and chains.

import { execFile } from 'node:child_process';
import type { Chain, Jump, Ruleset } from './network-isolation.js';
import { restoreScript } from './network-isolation.js';

/** Longest wait for the xtables lock another program holds, in seconds. */
const LOCK_WAIT_S = 10;
const COMMAND_TIMEOUT_MS = 30_000;

const tools = {
  ipv4: { main: 'iptables', restore: 'iptables-restore' },
  ipv6: { main: 'ip6tables', restore: 'ip6tables-restore' },
} as const;

function run(cmd: string, args: readonly string[], input?: string): Promise<{ code: number; stderr: string }> {
  return new Promise((resolve, reject) => {
    const child = execFile(cmd, args, { timeout: COMMAND_TIMEOUT_MS }, (err, _stdout, stderr) => {
      if (err !== null && typeof (err as NodeJS.ErrnoException).code === 'string') {
        // ENOENT and the like: the tool itself is missing.
        reject(new Error(`${cmd} could not be run: ${err.message}`));
        return;
      }
      resolve({ code: err === null ? 0 : ((err as { code?: number }).code ?? 1), stderr: String(stderr).trim() });
    });
    if (input !== undefined) child.stdin?.end(input);
  });
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<void> {
  const r = await run(cmd, args, input);
  if (r.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${r.code}): ${r.stderr}`);
}

/** Whether ip6tables works here (a kernel without IPv6 has none to isolate). */
let ipv6Usable: Promise<boolean> | undefined;
function hasIpv6(): Promise<boolean> {
  ipv6Usable ??= run(tools.ipv6.main, ['-w', String(LOCK_WAIT_S), '-S', 'INPUT']).then((r) => r.code === 0, () => false);
  return ipv6Usable;
}

async function families(): Promise<('ipv4' | 'ipv6')[]> {
  return (await hasIpv6()) ? ['ipv4', 'ipv6'] : ['ipv4'];
}

async function ensureJump(j: Jump): Promise<void> {
  const { main } = tools[j.family];
  const present = await run(main, ['-w', String(LOCK_WAIT_S), '-C', j.from, ...j.rule]);
  if (present.code !== 0) await must(main, ['-w', String(LOCK_WAIT_S), '-I', j.from, '1', ...j.rule]);
}

/**
 * Writes our chains (atomically per family), then makes sure every jump into them is there.
 * `quick`: only the IPv4 chains, jumps unchecked: what a container's coming or going changes
 * (about a third of the time of a full write), once a full one has put the rest in place.
 */
export async function applyRuleset(rules: Ruleset, o: { quick?: boolean } = {}): Promise<void> {
  for (const family of o.quick === true ? ['ipv4' as const] : await families()) {
    if (!rules.chains.some((c) => c.family === family)) continue;
    await must(tools[family].restore, ['-w', String(LOCK_WAIT_S), '--noflush'], restoreScript(rules.chains, family));
    if (o.quick !== true) for (const j of rules.jumps.filter((x) => x.family === family)) await ensureJump(j);
  }
}

/** Deletes our jumps (every copy) and then our chains; what is already gone is fine. */
export async function removeRuleset(rules: { chains: readonly Chain[]; jumps: readonly Jump[] }): Promise<void> {
  for (const family of await families()) {
    const { main } = tools[family];
    for (const j of rules.jumps.filter((x) => x.family === family)) {
      // Bounded: a jump inserted more than a few times over would be a bug elsewhere.
      for (let i = 0; i < 16; i += 1) {
        if ((await run(main, ['-w', String(LOCK_WAIT_S), '-D', j.from, ...j.rule])).code !== 0) break;
      }
    }
    for (const c of rules.chains.filter((x) => x.family === family)) {
      if ((await run(main, ['-w', String(LOCK_WAIT_S), '-F', c.name])).code === 0) await must(main, ['-w', String(LOCK_WAIT_S), '-X', c.name]);
    }
  }
}

/** Whether iptables (the IPv4 one) answers, and DOCKER-USER exists; a message saying what is wrong if not. */
export async function iptablesProblem(): Promise<string | null> {
  try {
    const r = await run(tools.ipv4.main, ['-w', String(LOCK_WAIT_S), '-S', 'DOCKER-USER']);
    if (r.code === 0) return null;
    return `iptables cannot list the DOCKER-USER chain (${r.stderr || `exit ${r.code}`}): run the dispatcher as root on a host whose dockerd manages iptables`;
  } catch (err) {
    return `${(err as Error).message}: install iptables (bash scripts/setup.sh does)`;
  }
}
