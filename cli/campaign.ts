/**
 * `dmabox campaign run SPEC.yaml [--trials N] [--seed S] [--jobs J] [--shard K/N] [--out DIR] [--iommu off] [--json]`
 * `dmabox campaign replay DIR --trial N`, `dmabox campaign merge DIR... [--out DIR] [--json]`,
 * `dmabox campaign report DIR [--compare DIR] [--out FILE]`, `dmabox campaign fuzz SPEC.yaml ...` (cli/fuzz.ts).
 * campaigns/README.md says what each does.
 */
import { availableParallelism } from 'node:os';
import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { mergeDirs, readRecords, replayTrial, runCampaign } from '../campaigns/runner.js';
import { renderReport } from '../campaigns/report.js';
import type { Summary } from '../campaigns/summary.js';
import { CliError } from './errors.js';
import { FUZZ_USAGE, runFuzz } from './fuzz.js';
import { readFileSync } from 'node:fs';

const USAGE = `usage: dmabox campaign run SPEC.yaml [--trials N] [--seed S] [--jobs J] [--shard K/N] [--out DIR] [--iommu off] [--json]
       dmabox campaign replay DIR --trial N
       dmabox campaign merge DIR... [--out DIR] [--json]
       dmabox campaign report DIR [--compare DIR] [--out FILE]
${FUZZ_USAGE.replace('usage: ', '       ')}`;

function usage(message: string): CliError {
  return new CliError('ERR_CLI_USAGE', `${message}\n${USAGE}`, { fix: 'see campaigns/README.md' });
}

/** `--name value` options and the positional arguments. */
function parse(argv: string[], valued: readonly string[], flags: readonly string[]): { opts: Map<string, string>; args: string[] } {
  const opts = new Map<string, string>();
  const args: string[] = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (flags.includes(a)) opts.set(a, 'true');
    else if (valued.includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw usage(`${a} needs a value`);
      opts.set(a, v);
    } else if (a.startsWith('-')) throw usage(`unknown option ${a}`);
    else args.push(a);
  }
  return { opts, args };
}

function count(opts: Map<string, string>, name: string, min: number, max = 2 ** 32 - 1): number | undefined {
  const v = opts.get(name);
  if (v === undefined) return undefined;
  const n = Number(v);
  if (!/^[0-9]+$/.test(v) || n < min || n > max) throw usage(`${name} ${v}: expected a whole number from ${min} to ${max}`);
  return n;
}

function line(s: Summary): string {
  return `${s.name}: ${s.trials} trials (fired ${s.fired}), IOMMU ${s.iommu ? 'on' : 'off'}: ${Object.entries(s.outcomes)
    .map(([o, n]) => `${o} ${n}`)
    .join(', ')}; ${s.violations} violation(s); ${s.trialsPerSecond} trials/s\n${findingLines(s)}`;
}

/** The findings after the summary line: one line each, with its trial count and replay command. */
export function findingLines(s: { findings?: Summary['findings'] }, max = 20): string {
  const list = s.findings ?? [];
  if (list.length === 0) return '';
  const shown = list
    .slice(0, max)
    .map((f) => `  ${f.fault}: ${f.symptom} (${f.trials.length} trial${f.trials.length === 1 ? '' : 's'}; ${f.replay})\n`)
    .join('');
  return `findings (device faults the driver did not survive): ${list.length}\n${shown}${list.length > max ? `  ... ${list.length - max} more in summary.json\n` : ''}`;
}

export async function run(argv: string[]): Promise<number> {
  const [sub, ...rest] = argv;
  const out = (s: string) => process.stdout.write(s);
  switch (sub) {
    case 'run': {
      const { opts, args } = parse(rest, ['--trials', '--seed', '--jobs', '--shard', '--out', '--iommu'], ['--json']);
      if (args.length !== 1) throw usage('name one campaign spec');
      const iommu = opts.get('--iommu') ?? 'on';
      if (iommu !== 'on' && iommu !== 'off') throw usage(`--iommu ${iommu}: expected on or off`);
      let shard: { k: number; n: number } | undefined;
      const sh = opts.get('--shard');
      if (sh !== undefined) {
        const m = /^([0-9]+)\/([0-9]+)$/.exec(sh);
        if (!m || Number(m[1]) < 1 || Number(m[1]) > Number(m[2])) throw usage(`--shard ${sh}: expected K/N with 1 <= K <= N`);
        shard = { k: Number(m[1]), n: Number(m[2]) };
      }
      const json = opts.has('--json');
      const tty = process.stderr.isTTY === true;
      const t0 = performance.now();
      let lastLine = 0;
      const summary = await runCampaign(args[0]!, {
        trials: count(opts, '--trials', 1),
        seed: count(opts, '--seed', 0),
        jobs: count(opts, '--jobs', 1, 256) ?? availableParallelism(),
        shard,
        out: opts.get('--out'),
        iommuOff: iommu === 'off',
        progress: (done, total, r) => {
          const now = performance.now();
          const rate = done / Math.max(0.001, (now - t0) / 1000);
          const eta = (total - done) / Math.max(rate, 0.001);
          if (tty) {
            const w = 30;
            const fill = Math.round((done / total) * w);
            process.stderr.write(
              `\r[${'#'.repeat(fill)}${'.'.repeat(w - fill)}] ${done}/${total} ${rate.toFixed(1)}/s ETA ${eta.toFixed(0)}s ${r.outcome === 'violation' ? `VIOLATION in trial ${r.index}` : ''}   `,
            );
            if (done === total) process.stderr.write('\n');
          } else if (now - lastLine > 5000 || done === total || r.outcome === 'violation') {
            lastLine = now;
            process.stderr.write(
              `campaign: ${done}/${total} trials, ${rate.toFixed(1)}/s${r.outcome === 'violation' ? `, violation in trial ${r.index}: ${r.violations.join('; ')}` : ''}\n`,
            );
          }
        },
      });
      out(json ? `${JSON.stringify(summary)}\n` : line(summary));
      return summary.violations ? 1 : 0;
    }
    case 'replay': {
      const { opts, args } = parse(rest, ['--trial'], []);
      const trial = count(opts, '--trial', 0);
      if (args.length !== 1 || trial === undefined) throw usage('name one campaign directory and --trial N');
      const { record, saved } = await replayTrial(args[0]!, trial, (l) => out(`  ${l}\n`));
      out(`${JSON.stringify(record, null, 2)}\n`);
      if (saved) {
        const same = saved.outcome === record.outcome && saved.fault === record.fault && JSON.stringify(saved.firings) === JSON.stringify(record.firings);
        out(
          same
            ? `replayed: same fault, firings and outcome (${record.outcome}) as the saved trial\n`
            : `replayed: DIFFERS from the saved trial (saved: ${saved.outcome}, ${JSON.stringify(saved.firings)})\n`,
        );
        return same ? 0 : 1;
      }
      return 0;
    }
    case 'merge': {
      const { opts, args } = parse(rest, ['--out'], ['--json']);
      if (args.length === 0) throw usage('name at least one campaign directory');
      const s = mergeDirs(args);
      const dir = opts.get('--out');
      if (dir) writeFileSync(join(dir, 'summary.json'), `${JSON.stringify(s, null, 2)}\n`);
      out(opts.has('--json') ? `${JSON.stringify(s)}\n` : line(s));
      return 0;
    }
    case 'report': {
      const { opts, args } = parse(rest, ['--compare', '--out'], []);
      if (args.length !== 1) throw usage('name one campaign directory');
      const dir = args[0]!;
      const summary = JSON.parse(readFileSync(join(dir, 'summary.json'), 'utf8')) as Summary;
      const cmp = opts.get('--compare');
      const other = cmp ? (JSON.parse(readFileSync(join(cmp, 'summary.json'), 'utf8')) as Summary) : undefined;
      const file = opts.get('--out') ?? join(dir, 'report.html');
      writeFileSync(file, renderReport(summary, readRecords(dir), other));
      out(`${file}\n`);
      return 0;
    }
    case 'fuzz':
      return runFuzz(rest);
    default:
      throw usage(sub ? `unknown subcommand '${sub}'` : 'name a subcommand');
  }
}
