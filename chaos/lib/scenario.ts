// What a chaos scenario is: a name, whether it belongs to the quick (CI) set, and a run that
// returns its row of CHAOS.md. Scenarios clean up their own cluster in a finally block.

import type { Row } from './report.js';

export type Outcome = Omit<Row, 'scenario' | 'at' | 'commit' | 'seconds'>;

export interface Scenario {
  name: string;
  /** In the CHAOS_QUICK=1 set (CI): short and telling. */
  quick: boolean;
  run(): Promise<Outcome>;
}

/** CHAOS_QUICK=1 shortens load windows (CI). */
export const quick = process.env.CHAOS_QUICK === '1';

/** Checks that make up a pass mark: each named, each true or false, listed in the notes when false. */
export class Marks {
  private readonly checks: { what: string; held: boolean }[] = [];
  check(what: string, held: boolean): boolean {
    this.checks.push({ what, held });
    return held;
  }
  get passed(): boolean {
    return this.checks.length > 0 && this.checks.every((c) => c.held);
  }
  missed(): string[] {
    return this.checks.filter((c) => !c.held).map((c) => `missed: ${c.what}`);
  }
}
