/**
 * The MINIX 3 experiment's figures from our campaign rounds (papers/minix3.md): given the `--out`
 * directories of `dmabox campaign run campaigns/examples/minix3-shape.yaml --seed S --trials 100`,
 * one per seed, it prints per round and in total: faults injected, faults that fired (a mutant is
 * always in place), faults the driver did not survive unaided (it was restarted, or failed as the
 * policy says), violations, and of the faults that took the driver down the share contained (no
 * violation) and recovered (service back, every acknowledged write intact: Nooks's measure). With
 * `--json`, one object last. Usage: node dist/bench/minix3-summary.js [--json] DIR...
 */
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { TrialRecord } from '../campaigns/trial.js';

export interface Round {
  dir: string;
  trials: number;
  fired: number;
  /** Trials in which the driver was restarted at least once or failed as the policy says. */
  driverDown: number;
  /** Of those: no oracle violation. */
  contained: number;
  /** Of those: outcome recovered (service back, nothing lost, no client error). */
  recovered: number;
  violations: number;
  findings: number;
  byFault: Record<string, { trials: number; driverDown: number; violations: number }>;
  byOperator: Record<string, { trials: number; driverDown: number }>;
}

export function summarizeRound(dir: string, records: readonly TrialRecord[]): Round {
  const r: Round = { dir, trials: 0, fired: 0, driverDown: 0, contained: 0, recovered: 0, violations: 0, findings: 0, byFault: {}, byOperator: {} };
  for (const t of records) {
    r.trials++;
    if (t.firings.length) r.fired++;
    const down = t.restarts > 0 || t.outcome === 'failed-as-policy-says';
    const f = (r.byFault[t.fault] ??= { trials: 0, driverDown: 0, violations: 0 });
    f.trials++;
    if (t.mutation) {
      const o = (r.byOperator[t.mutation.operator] ??= { trials: 0, driverDown: 0 });
      o.trials++;
      if (down) o.driverDown++;
    }
    if (t.outcome === 'violation') {
      r.violations++;
      f.violations++;
    }
    if (t.finding) r.findings++;
    if (!down) continue;
    r.driverDown++;
    f.driverDown++;
    if (t.outcome !== 'violation') r.contained++;
    if (t.outcome === 'recovered') r.recovered++;
  }
  return r;
}

function pct(a: number, b: number): string {
  return b ? `${((100 * a) / b).toFixed(1)} %` : '-';
}

export function main(argv: readonly string[]): number {
  const json = argv.includes('--json');
  const dirs = argv.filter((a) => a !== '--json');
  const rounds = dirs.map((d) =>
    summarizeRound(
      d,
      readFileSync(join(d, 'trials.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as TrialRecord),
    ),
  );
  const total = summarizeRound(
    'total',
    dirs.flatMap((d) =>
      readFileSync(join(d, 'trials.jsonl'), 'utf8')
        .split('\n')
        .filter((l) => l.trim())
        .map((l) => JSON.parse(l) as TrialRecord),
    ),
  );
  process.stdout.write('| round | faults | fired | driver down | contained | recovered | violations | findings |\n|---|---|---|---|---|---|---|---|\n');
  for (const r of [...rounds, total])
    process.stdout.write(
      `| ${r.dir} | ${r.trials} | ${r.fired} | ${r.driverDown} | ${r.contained} (${pct(r.contained, r.driverDown)}) | ${r.recovered} (${pct(r.recovered, r.driverDown)}) | ${r.violations} | ${r.findings} |\n`,
    );
  process.stdout.write('\n| class | faults | driver down | violations |\n|---|---|---|---|\n');
  for (const [k, v] of Object.entries(total.byFault).sort()) process.stdout.write(`| ${k} | ${v.trials} | ${v.driverDown} | ${v.violations} |\n`);
  process.stdout.write('\n| mutation operator | mutants | driver down |\n|---|---|---|\n');
  for (const [k, v] of Object.entries(total.byOperator).sort()) process.stdout.write(`| ${k} | ${v.trials} | ${v.driverDown} |\n`);
  if (json) process.stdout.write(`${JSON.stringify({ rounds, total })}\n`);
  return 0;
}

if (process.argv[1] === fileURLToPath(import.meta.url)) process.exitCode = main(process.argv.slice(2));
