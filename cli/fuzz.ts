/**
 * `dmabox campaign fuzz SPEC.yaml [--seconds S | --execs N] [--seed S] [--jobs J] [--corpus DIR]
 * [--out DIR] [--timeout MS] [--json] [--reproduce FILE]`: the coverage-guided mode
 * (campaigns/README.md, "Coverage-guided mode").
 */
import { availableParallelism } from 'node:os';
import { fuzz, type FuzzSummary, type Progress } from '../campaigns/fuzz/loop.js';
import { reproduce } from '../campaigns/fuzz/reproduce.js';
import { CliError } from './errors.js';

export const FUZZ_USAGE = `usage: dmabox campaign fuzz SPEC.yaml [--seconds S | --execs N] [--seed S] [--jobs J] [--corpus DIR] [--out DIR] [--timeout MS] [--json]
       dmabox campaign fuzz SPEC.yaml --reproduce FILE [--seed S] [--timeout MS]
  mutates what the simulated NVMe controller hands the driver (register reads, completion entries,
  Identify data), guided by V8 block coverage of the driver's modules; findings (exceptions, hangs,
  oracle failures) go to --out DIR/findings/ with the command that reproduces each.
  --seconds 60 by default; --jobs: worker threads (default the cores; 0: this thread); --timeout: one
  execution's limit (default 3000 ms).
`;

function usage(message: string): CliError {
  return new CliError('ERR_CLI_USAGE', `${message}\n${FUZZ_USAGE}`, { fix: 'see campaigns/README.md, "Coverage-guided mode"' });
}

interface Parsed {
  spec: string;
  seconds?: number;
  execs?: number;
  seed?: number;
  jobs: number;
  corpus?: string;
  out?: string;
  timeoutMs: number;
  json: boolean;
  reproduce?: string;
}

const VALUED = ['--seconds', '--execs', '--seed', '--jobs', '--corpus', '--out', '--timeout', '--reproduce'];

function num(name: string, v: string, min: number, max: number, whole: boolean): number {
  const n = Number(v);
  if (!(whole ? /^[0-9]+$/ : /^[0-9]+(\.[0-9]+)?$/).test(v) || n < min || n > max)
    throw usage(`${name} ${v}: expected ${whole ? 'a whole number' : 'a number'} from ${min} to ${max}`);
  return n;
}

export function parseFuzzArgs(argv: readonly string[]): Parsed {
  const opts = new Map<string, string>();
  const args: string[] = [];
  let json = false;
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (a === '--json') json = true;
    else if (VALUED.includes(a)) {
      const v = argv[++i];
      if (v === undefined) throw usage(`${a} needs a value`);
      if (opts.has(a)) throw usage(`${a} given twice`);
      opts.set(a, v);
    } else if (a.startsWith('-')) throw usage(`unknown option ${a}`);
    else args.push(a);
  }
  if (args.length !== 1) throw usage(args.length ? `name one campaign spec, not ${args.length}` : 'name a campaign spec');
  if (opts.has('--seconds') && opts.has('--execs')) throw usage('give --seconds or --execs, not both');
  const p: Parsed = { spec: args[0]!, jobs: availableParallelism(), timeoutMs: 3000, json };
  const g = (k: string) => opts.get(k);
  if (g('--seconds') !== undefined) p.seconds = num('--seconds', g('--seconds')!, 0.1, 86400, false);
  if (g('--execs') !== undefined) p.execs = num('--execs', g('--execs')!, 1, 2 ** 32 - 1, true);
  if (g('--seed') !== undefined) p.seed = num('--seed', g('--seed')!, 0, 2 ** 32 - 1, true);
  if (g('--jobs') !== undefined) p.jobs = num('--jobs', g('--jobs')!, 0, 64, true);
  if (g('--timeout') !== undefined) p.timeoutMs = num('--timeout', g('--timeout')!, 10, 600_000, true);
  if (g('--corpus') !== undefined) p.corpus = g('--corpus')!;
  if (g('--out') !== undefined) p.out = g('--out')!;
  if (g('--reproduce') !== undefined) {
    if (p.seconds !== undefined || p.execs !== undefined || p.corpus !== undefined || p.out !== undefined || json)
      throw usage('--reproduce FILE reruns one input: it takes only --seed and --timeout');
    p.reproduce = g('--reproduce')!;
  }
  return p;
}

function progressLine(p: Progress): string {
  return `fuzz: ${p.seconds.toFixed(0)}s ${p.execs} execs ${p.execsPerSecond.toFixed(0)}/s, coverage ${p.coverage} blocks, corpus ${p.corpus}, findings ${p.findings}\n`;
}

function summaryLine(s: FuzzSummary): string {
  return `fuzz: ${s.execs} executions in ${s.seconds.toFixed(1)} s (${s.execsPerSecond}/s, ${s.execsPerCpuSecond}/CPU-s, ${s.jobs} job(s)); coverage ${s.coverage} blocks; corpus ${s.corpus}; ${s.findings} finding(s)\n`;
}

export async function runFuzz(
  argv: readonly string[],
  out: (s: string) => void = (s) => process.stdout.write(s),
  err: (s: string) => void = (s) => process.stderr.write(s),
): Promise<number> {
  const p = parseFuzzArgs(argv);
  if (p.reproduce !== undefined) {
    const r = await reproduce(p.spec, p.reproduce, p.seed, p.timeoutMs, (l) => out(`  ${l}\n`));
    out(r.finding ? `finding: ${r.finding.kind}: ${r.finding.symptom}\n` : 'no finding: the driver survived this input\n');
    if (r.saved !== undefined) out(r.same ? `reproduced: the same kind (${r.saved}) as the saved finding\n` : `DIFFERS from the saved finding (${r.saved})\n`);
    return r.same ? 0 : 1;
  }
  const s = await fuzz({
    spec: p.spec,
    ...(p.seconds !== undefined ? { seconds: p.seconds } : {}),
    ...(p.execs !== undefined ? { execs: p.execs } : {}),
    ...(p.seed !== undefined ? { seed: p.seed } : {}),
    ...(p.corpus !== undefined ? { corpus: p.corpus } : {}),
    ...(p.out !== undefined ? { out: p.out } : {}),
    jobs: p.jobs,
    timeoutMs: p.timeoutMs,
    progress: (x) => err(progressLine(x)),
    finding: (f, file) => err(`fuzz: finding: ${f.kind}: ${f.symptom}${file ? `\n  reproduce: dmabox campaign fuzz ${p.spec} --reproduce ${file}` : ''}\n`),
  });
  if (p.json) {
    const { timeline, found, ...rest } = s;
    out(`${JSON.stringify({ ...rest, timeline, findings: s.findings, found })}\n`);
  } else out(summaryLine(s));
  return 0;
}
