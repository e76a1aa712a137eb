/**
 * The hostile-container suite's helpers: a sandbox whose container is the attacker fixture
 * (the real driver, confined, then the named attack after READY), and the attack's report lines.
 */
import { extname } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Supervisor, type SupervisorOptions } from '../../../sandbox/manager/supervisor.js';
import type { Policy } from '../../../policies/types.js';
import { until } from '../helpers.js';

const here = fileURLToPath(import.meta.url);
export const ATTACKER = fileURLToPath(new URL(`./fixtures/attacker${extname(here)}`, import.meta.url));

/** A supervisor for `policy` whose containers run `attack` with `args` after READY. */
export function attacker(policy: Policy, attack: string, args: readonly string[] = [], options: SupervisorOptions = {}): Supervisor {
  return new Supervisor(policy, { ...options, entry: ATTACKER, entryArgs: [attack, ...args] });
}

/** The attack's report lines so far (`attack NAME: ` cut off). */
export function reports(s: Supervisor, attack: string): string[] {
  const prefix = `attack ${attack}: `;
  return s.events.flatMap((e) => {
    const i = e.text.indexOf(prefix);
    return i < 0 ? [] : [e.text.slice(i + prefix.length)];
  });
}

/** Wait until the attack has said `done` (or threw), and return its report lines. */
export async function attackDone(s: Supervisor, attack: string, ms = 20_000): Promise<string[]> {
  await until(`attack ${attack} to finish`, () => reports(s, attack).some((l) => l === 'done' || l.startsWith('threw ')), ms);
  return reports(s, attack);
}
