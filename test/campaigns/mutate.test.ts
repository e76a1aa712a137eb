/**
 * The mutation class (campaigns/mutate/): the scanner on what built JavaScript holds, each
 * operator's sites, the loop guard bounding a mutant that spins, a known mutant (the SQ tail's wrap
 * check flipped) applied and changing what the driver does, a mutant that corrupts its own disk
 * reported as a finding and not a violation, replay rebuilding the same mutant, an external driver
 * (examples/minimal-nvme) mutated too, and the spec's errors.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath, pathToFileURL } from 'node:url';
import { scan } from '../../campaigns/mutate/scanner.js';
import { findSites, MUTATION_OPERATORS, type MutationOperator } from '../../campaigns/mutate/operators.js';
import { instrument } from '../../campaigns/mutate/instrument.js';
import { setGuardBudget } from '../../campaigns/mutate/guard.js';
import { Mutator } from '../../campaigns/mutate/mutator.js';
import { MutateError } from '../../campaigns/mutate/errors.js';
import { InjectError } from '../../campaigns/inject/errors.js';
import { parseCampaign, targetPolicy } from '../../campaigns/spec.js';
import { trialPlan } from '../../campaigns/plan.js';
import { Rig } from '../../campaigns/rig.js';
import { loadBlockDriver } from '../../campaigns/target.js';
import { runTrial, type TrialRecord } from '../../campaigns/trial.js';
import { replayTrial, runCampaign } from '../../campaigns/runner.js';
import { CampaignError } from '../../campaigns/errors.js';

let root = dirname(fileURLToPath(import.meta.url));
while (!existsSync(join(root, 'package.json'))) root = dirname(root);
if (root.endsWith('/dist')) root = dirname(root);
const POLICY = join(root, 'policies/examples/sim-nvme.yaml');
const EXTERNAL = join(root, 'examples/minimal-nvme/policy.yaml');
const NVME = join(root, 'dist/drivers/nvme/sandbox.js');
const dir = mkdtempSync(join(tmpdir(), 'dmabox-mutate-'));

// Bounds wide enough that a loaded machine (load 16 seen) does not decide a trial's outcome: replay must agree.
function specFile(name: string, mutation: string, policy = POLICY, trials = 6): string {
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\npolicy: ${policy}\ntrials: ${trials}\nworkload: { blocks: 128, operations: 24, depth: 4 }\nrecovery: { hangMs: 500ms, startMs: 1500ms, liveness: 20s }\nfaults:\n  mutation: ${mutation}\n`,
  );
  return file;
}

function sitesOf(op: MutationOperator, src: string): string[] {
  return findSites(op, scan(src), src, () => false).map((s) => `${src.slice(0, s.start)}${s.after}${src.slice(s.end)}`);
}

test('the scanner: regular expressions told from division, templates with substitutions, numbers, comments, positions', () => {
  const src = 'const a = b / c / d; const r = /x\\/y[/]/g.test(s);\n// c < d\nconst t = `a${x + `in${y}`}b`; /* e > f */ const n = 0x1f_00n + 1.5e3 + .5;';
  const t = scan(src);
  assert.equal(
    t.filter((x) => x.kind === 'regex').map((x) => x.text),
    ['/x\\/y[/]/g'],
  );
  assert.equal(
    t.filter((x) => x.kind === 'num').map((x) => x.text),
    ['0x1f_00n', '1.5e3', '.5'],
  );
  assert.equal(
    t.filter((x) => x.kind === 'template').map((x) => x.text),
    ['`a${', '`in${', '}`', '}b`'],
  );
  assert.not.ok(
    t.some((x) => x.text === '<' || x.text === '>'),
    'comments are skipped',
  );
  const x = t.find((k) => k.text === 'x')!;
  assert.is(x.line, 3);
  assert.is(src.split('\n')[2]!.slice(x.col - 1, x.col), 'x');
  assert.throws(
    () => scan('const s = "open'),
    (e: unknown) => e instanceof MutateError && e.code === 'ERR_MUTATE_SCAN',
  );
});

test('each operator finds its sites and rewrites them', () => {
  assert.equal(sitesOf('relational', 'if (i < n) f(a >= b);'), ['if (i <= n) f(a >= b);', 'if (i < n) f(a > b);']);
  assert.equal(sitesOf('equality', 'a === b'), ['a !== b']);
  assert.equal(sitesOf('logical', 'a && b'), ['a || b']);
  assert.equal(sitesOf('negate-condition', 'while (x.y) z();'), ['while (!(x.y)) z();']);
  assert.equal(sitesOf('arithmetic', "x = a + 1 - -b; s = 'n' + k;"), ["x = a - 1 - -b; s = 'n' + k;", "x = a + 1 + -b; s = 'n' + k;"]);
  assert.equal(sitesOf('bitwise', 'v & m'), ['v | m']);
  assert.equal(sitesOf('constant', 'q[4] = 0x10; o = { 1: a };'), [
    'q[5] = 0x10; o = { 1: a };',
    'q[0] = 0x10; o = { 1: a };',
    'q[0xffffffff] = 0x10; o = { 1: a };',
    'q[4] = 0x11; o = { 1: a };',
    'q[4] = 0x0; o = { 1: a };',
    'q[4] = 0xffffffff; o = { 1: a };',
  ]);
  assert.equal(sitesOf('index', "q[i + 2] = m['k'] + [1][0];"), ["q[(i + 2) + 1] = m['k'] + [1][0];", "q[i + 2] = m['k'] + [1][(0) + 1];"]);
  assert.equal(sitesOf('drop-statement', 'function f() { this.x = g(() => { h(); }); return 1; } const o = { a: b() };'), [
    'function f() { ; return 1; } const o = { a: b() };',
    'function f() { this.x = g(() => { ; }); return 1; } const o = { a: b() };',
  ]);
  assert.equal(sitesOf('remove-return', 'for (;;) { if (a) break; return x; }'), ['for (;;) { if (a) ; return x; }', 'for (;;) { if (a) break; x; }']);
  assert.is(MUTATION_OPERATORS.length, 10);
});

test('the loop guard bounds a mutant that spins without yielding, in every kind of loop', async () => {
  const guard = join(root, 'dist/campaigns/mutate/guard.js');
  const src = [
    'export function spinWhile() { let n = 0; while (true) n++; return n; }',
    'export function spinFor() { for (let i = 0; ; i++) {} }',
    'export function spinOf() { const a = [1]; for (const x of a) a.push(x); }',
    'export function fine() { let s = 0; for (let i = 0; i < 100000; i++) s += i; do { s--; } while (s > 4999950000 - 5); return s; }',
  ].join('\n');
  const file = join(dir, 'spin.js');
  writeFileSync(file, instrument(src, guard));
  const m = (await import(pathToFileURL(file).href)) as Record<string, () => unknown>;
  const old = setGuardBudget(50);
  try {
    for (const f of ['spinWhile', 'spinFor', 'spinOf']) {
      const t0 = performance.now();
      assert.throws(
        () => m[f]!(),
        (e: unknown) => e instanceof InjectError && e.code === 'ERR_INJECTED_LOOP',
        f,
      );
      assert.ok(performance.now() - t0 < 5000, `${f} bounded`);
      await new Promise((r) => setImmediate(r)); // a new turn of the event loop
    }
    assert.is(m.fine!(), 4999950000 - 5, 'a finite loop runs as before');
  } finally {
    setGuardBudget(old);
  }
});

/** Run one trial of `spec` with the given driver module, the runner's way (uncaught mutant errors crash its incarnation). */
async function trialWith(file: string, mod: Awaited<ReturnType<Mutator['load']>> | undefined, mutator?: Mutator): Promise<TrialRecord> {
  const spec = parseCampaign(readFileSync(file, 'utf8'), file);
  const policy = targetPolicy(spec);
  const driver = await loadBlockDriver(policy);
  const uncaught: { crash?: (why: string) => void } = {};
  const onError = (e: unknown) => {
    if (e instanceof InjectError) return;
    if (mutator?.owns(e)) return uncaught.crash?.((e as Error).message);
    throw e;
  };
  process.on('uncaughtException', onError);
  process.on('unhandledRejection', onError);
  try {
    const plan = trialPlan(spec, 7, 0);
    return await runTrial(
      spec,
      policy,
      mod ? mod.module : driver,
      new Rig(false),
      plan,
      mod ? { mutation: { verifier: driver, mutation: mod.mutation, uncaught } } : {},
    );
  } finally {
    process.off('uncaughtException', onError);
    process.off('unhandledRejection', onError);
  }
}

function lineOf(file: string, text: string): number {
  const lines = readFileSync(join(root, 'dist', file), 'utf8').split('\n');
  const i = lines.findIndex((l) => l.includes(text));
  assert.ok(i >= 0, `${text} in ${file}`);
  return i + 1;
}

test('a known mutant: the SQ tail wrap check flipped (=== to !==) is applied and stops the driver from working', async () => {
  const file = specFile('known', '{ operators: [equality], files: [queue.js] }');
  const mutator = await Mutator.create(NVME, { operators: ['equality'], files: ['queue.js'] });
  try {
    const line = lineOf('drivers/nvme/queue.js', 'if (++this.sqTail === this.entries)');
    const mutant = await mutator.loadAt({ file: 'drivers/nvme/queue.js', line, operator: 'equality', before: '===' });
    assert.ok(mutant, 'the site exists');
    assert.equal([mutant.mutation.before, mutant.mutation.after], ['===', '!==']);
    const original = await trialWith(file, undefined);
    assert.is(original.outcome, 'recovered');
    assert.is(original.restarts, 0);
    const r = await trialWith(file, mutant, mutator);
    assert.equal(r.mutation, mutant.mutation);
    assert.ok(r.restarts > 0, `the mutant was restarted (${r.restarts})`);
    assert.is.not(r.outcome, 'recovered');
    assert.equal(r.violations, [], 'the sandbox held: the verifier read back every acknowledged write');
  } finally {
    mutator.close();
  }
});

test('a mutant that writes one block too many corrupts its own disk: a finding, not a violation', async () => {
  const file = specFile('own-data', '{ operators: [arithmetic], files: [ioqueue.js] }');
  const mutator = await Mutator.create(NVME, { operators: ['arithmetic'], files: ['ioqueue.js'] });
  try {
    const line = lineOf('drivers/nvme/ioqueue.js', 'lba >>> 0, hi32(lba), ((blocks - 1) | cdw12Flags) >>> 0, 0);');
    const mutant = await mutator.loadAt({ file: 'drivers/nvme/ioqueue.js', line, operator: 'arithmetic', before: '-' });
    assert.ok(mutant, 'the site exists');
    const r = await trialWith(file, mutant, mutator);
    assert.equal(r.violations, []);
    assert.is.not(r.outcome, 'violation');
    assert.ok(r.finding, `a finding: ${JSON.stringify(r)}`);
    assert.match(r.finding.symptom, /acknowledged block\(s\) lost or changed .*not a sandbox violation/);
  } finally {
    mutator.close();
  }
});

test('replay rebuilds the same mutant and reruns it; an external driver is mutated too', async () => {
  const out = join(dir, 'out');
  const file = specFile('replayed', '{ operators: [relational, equality, constant, drop-statement] }', POLICY, 6);
  const summary = await runCampaign(file, { out, seed: 3 });
  assert.is(summary.trials, 6);
  assert.is(summary.violations, 0);
  assert.is(summary.byFault.mutation ? Object.values(summary.byFault.mutation).reduce((a, b) => a + b, 0) : 0, 6);
  const records = readFileSync(join(out, 'trials.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrialRecord);
  assert.ok(records.every((r) => r.mutation && r.mutation.file.startsWith('drivers/nvme/')));
  const lines: string[] = [];
  const { record, saved } = await replayTrial(out, 4, (l) => lines.push(l));
  assert.equal(record.mutation, saved!.mutation);
  assert.is(record.outcome, saved!.outcome);
  assert.ok(
    lines.some((l) => l.startsWith(`mutant: ${saved!.mutation!.file}:${saved!.mutation!.line}:`)),
    lines.join('\n'),
  );

  const ext = await runCampaign(specFile('external', '{ operators: [relational, equality, constant] }', EXTERNAL, 4), { seed: 5, out: join(dir, 'ext') });
  assert.is(ext.violations, 0);
  const extRecords = readFileSync(join(dir, 'ext', 'trials.jsonl'), 'utf8')
    .trim()
    .split('\n')
    .map((l) => JSON.parse(l) as TrialRecord);
  assert.is(extRecords.length, 4);
  for (const r of extRecords) assert.match(r.mutation!.file, /^examples\/minimal-nvme\/driver\.js$/);
});

test('spec errors: an unknown operator points at its line; files that match nothing name the driver’s files', async () => {
  try {
    parseCampaign('version: 1\nname: m\npolicy: p.yaml\nfaults:\n  mutation:\n    operators: [flip]\n', 'm.yaml');
    assert.unreachable('accepted');
  } catch (e) {
    assert.instance(e, CampaignError);
    assert.match((e as Error).message, /m\.yaml:6: faults\.mutation\.operators\[0\]/);
  }
  try {
    await runCampaign(specFile('nofiles', '{ files: [nothing.js] }', POLICY, 1));
    assert.unreachable('ran');
  } catch (e) {
    assert.instance(e, MutateError);
    assert.is((e as MutateError).code, 'ERR_MUTATE_SITES');
    assert.match((e as Error).message, /queue\.js/);
  }
});

test.run();
