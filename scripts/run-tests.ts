/**
 * The test command behind `npm test`, `npm run test:unit`, `npm run test:lab` and CI (.ci/run).
 *
 * It runs the lint checks (eslint, then prettier --check: each counts as one test), the unit and
 * simulator suites (uvu under c8, over the compiled tests in dist/test; the architecture check,
 * test/architecture.test.ts, is one of them) and the lab suites (booted in QEMU by appliance/lab),
 * and ends with the one line CI reads: `N passed, N failed, N skipped`, summed over the whole run.
 * uvu's own `Total:/Passed:/Skipped:` block is parsed per run, never trusted to be the last word: a
 * suite that crashes before its summary counts as a failure. Tests a machine cannot run are
 * registered as skipped (test/helpers/skip.ts), so uvu's `Skipped:` and this line count them.
 *
 * Usage: node dist/scripts/run-tests.js [all|lint|unit|lab]   (all: lint, unit, lab)
 */
import { spawn } from 'node:child_process';
import { existsSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

export interface Counts {
  passed: number;
  failed: number;
  skipped: number;
}

const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');

/** Parse uvu's closing block; returns undefined when the run ended before printing it. */
export function parseUvuSummary(output: string): Counts | undefined {
  // eslint-disable-next-line no-control-regex
  const text = output.replace(/\x1b\[[0-9;]*m/g, '');
  const total = /^\s*Total:\s+(\d+)\s*$/m.exec(text);
  const passed = /^\s*Passed:\s+(\d+)\s*$/m.exec(text);
  const skipped = /^\s*Skipped:\s+(\d+)\s*$/m.exec(text);
  if (!total || !passed) return undefined;
  const t = Number(total[1]),
    p = Number(passed[1]);
  return { passed: p, failed: t - p, skipped: skipped ? Number(skipped[1]) : 0 };
}

function run(cmd: string, args: string[]): Promise<{ code: number; output: string }> {
  return new Promise((resolve) => {
    const child = spawn(cmd, args, { cwd: root, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, FORCE_COLOR: process.env.FORCE_COLOR ?? '0' } });
    let output = '';
    child.stdout.on('data', (d: Buffer) => {
      output += d.toString();
      process.stdout.write(d);
    });
    child.stderr.on('data', (d: Buffer) => {
      output += d.toString();
      process.stderr.write(d);
    });
    child.on('close', (code, signal) => resolve({ code: code ?? (signal ? 128 : 1), output }));
  });
}

async function unit(): Promise<Counts> {
  console.log('== unit and simulator tests (uvu under c8, dist/test, lab excluded)');
  const c8 = join(root, 'node_modules', 'c8', 'bin', 'c8.js');
  const uvu = join(root, 'node_modules', 'uvu', 'bin.js');
  const r = await run(process.execPath, [c8, process.execPath, uvu, 'dist/test', '\\.test\\.js$', '-i', '^lab/']);
  const counts = parseUvuSummary(r.output);
  if (!counts) {
    console.error(`unit tests: the run ended (exit ${r.code}) before uvu printed its summary: counted as one failure`);
    return { passed: 0, failed: 1, skipped: 0 };
  }
  if (r.code !== 0 && counts.failed === 0) {
    // Tests passed but c8's coverage threshold (or the process) failed.
    console.error(`unit tests: all passed but the run exited ${r.code} (coverage below the threshold in .c8rc.json?): counted as one failure`);
    return { ...counts, failed: 1 };
  }
  return counts;
}

/** A check run as one command (a linter): one test, passed when it exits 0. */
export function checkCounts(name: string, code: number): Counts {
  if (code === 0) return { passed: 1, failed: 0, skipped: 0 };
  console.error(`${name}: failed (exit ${code}): counted as one failure`);
  return { passed: 0, failed: 1, skipped: 0 };
}

async function lint(): Promise<Counts> {
  console.log('== lint: eslint (typescript-eslint, eslint.config.js), then prettier --check (.prettierrc.json)');
  const eslint = await run(process.execPath, [join(root, 'node_modules', 'eslint', 'bin', 'eslint.js'), '.']);
  const prettier = await run(process.execPath, [join(root, 'node_modules', 'prettier', 'bin', 'prettier.cjs'), '--check', '.']);
  const a = checkCounts('lint: eslint', eslint.code);
  const b = checkCounts('lint: prettier --check (npm run format fixes it)', prettier.code);
  return { passed: a.passed + b.passed, failed: a.failed + b.failed, skipped: 0 };
}

async function lab(): Promise<Counts> {
  console.log('== lab tests (QEMU with an emulated VT-d IOMMU, NVMe and e1000e; real VFIO inside)');
  const suite = join(root, 'dist', 'appliance', 'lab', 'suite.js');
  const strict = process.env.CI === 'true';
  if (!existsSync(suite)) {
    const msg = 'lab: SKIPPED: the lab runner (appliance/lab/suite.ts) is not built';
    console.error(msg);
    return strict ? { passed: 0, failed: 1, skipped: 0 } : { passed: 0, failed: 0, skipped: 1 };
  }
  const mod = (await import(suite)) as { runLabSuite: (o: { strict: boolean }) => Promise<Counts & { skippedReason?: string }> };
  const r = await mod.runLabSuite({ strict });
  if (r.skippedReason) {
    console.error(`lab: SKIPPED: ${r.skippedReason}`);
    if (strict) {
      console.error('lab: CI=true, and in CI a skipped lab is a failure');
      return { passed: r.passed, failed: r.failed + 1, skipped: r.skipped };
    }
  }
  return r;
}

async function main(): Promise<void> {
  const mode = process.argv[2] ?? 'all';
  if (!['all', 'lint', 'unit', 'lab'].includes(mode)) {
    console.error('usage: run-tests [all|lint|unit|lab]');
    process.exit(2);
  }
  const total: Counts = { passed: 0, failed: 0, skipped: 0 };
  const add = (c: Counts) => {
    total.passed += c.passed;
    total.failed += c.failed;
    total.skipped += c.skipped;
  };
  if (mode === 'all' || mode === 'lint') add(await lint());
  if (mode === 'all' || mode === 'unit') add(await unit());
  if (mode === 'all' || mode === 'lab') add(await lab());
  console.log(`\n${total.passed} passed, ${total.failed} failed, ${total.skipped} skipped`);
  process.exitCode = total.failed === 0 ? 0 : 1;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) void main();
