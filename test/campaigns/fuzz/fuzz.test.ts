/**
 * The coverage-guided fuzzer (campaigns/fuzz/): the input format and the NVMe model's hook, the
 * mutators, the coverage bookkeeping, corpus and findings on disk, the CLI's argument errors, and
 * short runs on this thread (so c8 sees the loop) that find a planted bug in a test double driver
 * (test/campaigns/fuzz/fixtures/planted-driver.ts) and reproduce it.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, mkdtempSync, readdirSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { Rng } from '../../../common/prng.js';
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme } from '../../../sim/nvme/controller.js';
import { REG, VS_1_4_0 } from '../../../spec/nvme/registers.js';
import {
  apply,
  decode,
  describe,
  DIRECTIVE_BYTES,
  encode,
  EVERY,
  InputMutator,
  Kind,
  MAX_DIRECTIVES,
  Op,
  type Directive,
} from '../../../campaigns/fuzz/input.js';
import { aimed, mutate, MUTATORS } from '../../../campaigns/fuzz/mutate.js';
import { bucket, CoverageMap, CoverageSession, features, type ScriptCoverage } from '../../../campaigns/fuzz/coverage.js';
import { inputName, loadCorpus, readFinding, saveFinding, saveInput } from '../../../campaigns/fuzz/corpus.js';
import { findingKey, fuzz } from '../../../campaigns/fuzz/loop.js';
import { InProcess } from '../../../campaigns/fuzz/pool.js';
import { reproduce } from '../../../campaigns/fuzz/reproduce.js';
import { FuzzError } from '../../../campaigns/fuzz/errors.js';
import { parseFuzzArgs, runFuzz } from '../../../cli/fuzz.js';
import { CliError } from '../../../cli/errors.js';

const dir = mkdtempSync(join(tmpdir(), 'dmabox-fuzz-'));
const PLANTED = fileURLToPath(new URL('./fixtures/planted-driver.js', import.meta.url));

function spec(name: string, driver: string): string {
  const policy = join(dir, `${name}-policy.yaml`);
  writeFileSync(
    policy,
    `version: 1\nname: ${name}\ndevice: { sim: nvme, capacity: 1MiB, blockSize: 512 }\ndriver: ${driver}\nwindows:\n  - { size: 1MiB, label: queues }\n  - { size: 1MiB, label: io-buffers }\nlinkback: { nbd: { socket: ${join(dir, `${name}.sock`)}, export: x } }\n`,
  );
  const file = join(dir, `${name}.yaml`);
  writeFileSync(
    file,
    `version: 1\nname: ${name}\npolicy: ${policy}\nworkload: { blocks: 64, operations: 4, maxBlocks: 2, depth: 2 }\nrecovery: { hangMs: 40ms, startMs: 300ms }\nfaults:\n  crash: { weight: 1 }\n`,
  );
  return file;
}
const PLANTED_SPEC = spec('planted', `{ module: ${PLANTED} }`);
const NVME_SPEC = spec('nvme', '{ name: nvme }');

test('input: directives round-trip; a partial tail and directives past the maximum are ignored; every op', () => {
  const ds: Directive[] = [
    { kind: Kind.REGISTER, nth: 3, sel: 7, op: Op.SET, value: 0xdeadbeef },
    { kind: Kind.COMPLETION, nth: EVERY, sel: 3, op: Op.FLIP, value: 16 },
    { kind: Kind.IDENTIFY, nth: 0, sel: 77, op: Op.ZERO, value: 0 },
  ];
  const b = encode(ds);
  assert.is(b.length, 3 * DIRECTIVE_BYTES);
  assert.equal(decode(b), ds);
  assert.equal(decode(new Uint8Array([...b, 1, 2, 3])), ds);
  assert.is(decode(new Uint8Array((MAX_DIRECTIVES + 5) * DIRECTIVE_BYTES)).length, MAX_DIRECTIVES);
  assert.is(decode(new Uint8Array([7, 0, 0, 0, 0, 13, 0, 0, 0, 0]))[0]!.kind, 7 % 3);
  assert.is(apply(Op.SET, 5, 9), 9);
  assert.is(apply(Op.XOR, 0xf0, 0xff), 0x0f);
  assert.is(apply(Op.ADD, 0xffffffff, 2), 1);
  assert.is(apply(Op.FLIP, 0, 31), 0x80000000);
  assert.is(apply(Op.ONES, 0, 0), 0xffffffff);
  assert.is(apply(Op.ZERO, 77, 0), 0);
  assert.is(describe(ds[0]!), 'register #3: register 0x1c set 0xdeadbeef');
  assert.is(describe(ds[1]!), 'completion every: completion dword 3 flip 0x10');
  assert.is(describe(ds[2]!), 'identify #0: identify byte 76 zero');
});

test('input: the mutator hook in the NVMe model changes the nth register read, every completion, Identify bytes; off when inactive', () => {
  const m = new InputMutator(
    encode([
      { kind: Kind.REGISTER, nth: 1, sel: REG.VS.offset / 4, op: Op.SET, value: 0x20000 },
      { kind: Kind.COMPLETION, nth: EVERY, sel: 0, op: Op.ONES, value: 0 },
      { kind: Kind.IDENTIFY, nth: 1, sel: 4, op: Op.XOR, value: 0xff },
    ]),
  );
  const machine = new SimMachine();
  machine.attach(new SimNvme({ mutator: m, namespaces: [{ blocks: 8 }] }), { address: '0000:00:05.0' });
  const bar = machine.platform('0000:00:05.0').bar(0);
  assert.is(bar.read32(REG.VS.offset), VS_1_4_0, 'read 0 untouched');
  assert.is(bar.read32(REG.VS.offset), 0x20000, 'read 1 set');
  assert.is(bar.read32(REG.VS.offset), VS_1_4_0, 'read 2 untouched');
  const cqe = new Uint32Array([1, 2, 3, 4, 5, 6, 7, 8]);
  m.completion(cqe, 4);
  m.completion(cqe, 4);
  assert.equal([...cqe], [1, 2, 3, 4, 0xffffffff, 6, 7, 8]);
  const id0 = new Uint8Array(16);
  const id1 = new Uint8Array(16);
  m.identify(1, id0);
  m.identify(1, id1);
  assert.equal([...id0.slice(4, 8)], [0, 0, 0, 0]);
  assert.equal([...id1.slice(4, 8)], [0xff, 0, 0, 0]);
  assert.equal(m.observed(), { registers: [[REG.VS.offset / 4, 3]], completions: 2, identifies: 2 });
  assert.is(m.fired.length, 4, 'the register once, the completion directive on both, the Identify once');
  m.active = false;
  assert.is(bar.read32(REG.VS.offset), VS_1_4_0);
  const plain = new InputMutator(new Uint8Array(0));
  assert.is(plain.register(8, 42), 42);
});

test('mutators: deterministic from the seed, bounded, decodable; aimed directives hit observed events', () => {
  const observed = { registers: [[7, 5] as [number, number]], completions: 10, identifies: 2 };
  for (const which of MUTATORS) {
    const a = mutate(encode([aimed(new Rng(1), observed)]), new Rng(9), observed, encode([aimed(new Rng(2), observed)]), which);
    const b = mutate(encode([aimed(new Rng(1), observed)]), new Rng(9), observed, encode([aimed(new Rng(2), observed)]), which);
    assert.equal(a, b, which);
    assert.ok(a.length <= MAX_DIRECTIVES * DIRECTIVE_BYTES, which);
  }
  const rng = new Rng(3);
  let x: Uint8Array = new Uint8Array(0);
  for (let i = 0; i < 500; i++) x = mutate(x, rng, observed, x);
  assert.ok(x.length <= MAX_DIRECTIVES * DIRECTIVE_BYTES);
  for (let i = 0; i < 200; i++) {
    const d = aimed(rng, observed);
    if (d.kind === Kind.REGISTER) {
      assert.is(d.sel, 7);
      assert.ok(d.nth === EVERY || d.nth < 5);
    } else if (d.kind === Kind.COMPLETION) assert.ok(d.nth < 10);
    else assert.ok(d.nth < 2);
  }
  const parent = encode([{ kind: 0, nth: 0, sel: 7, op: 0, value: 1 }]);
  const copy = parent.slice();
  mutate(parent, rng, observed, undefined, 'edit');
  assert.equal(parent, copy, 'the parent is never changed');
  assert.is(decode(mutate(parent, rng, observed, undefined, 'drop')).length, 0);
  assert.is(decode(mutate(parent, rng, observed, undefined, 'duplicate')).length, 2);
});

test('coverage: blocks counted > 0 under the prefix become bucketed features; the map says what is new', () => {
  const scripts: ScriptCoverage[] = [
    {
      url: 'file:///d/drv/a.js',
      functions: [
        {
          ranges: [
            { startOffset: 0, endOffset: 100, count: 1 },
            { startOffset: 10, endOffset: 20, count: 0 },
            { startOffset: 30, endOffset: 40, count: 9 },
          ],
        },
      ],
    },
    { url: 'file:///d/other.js', functions: [{ ranges: [{ startOffset: 0, endOffset: 10, count: 5 }] }] },
  ];
  const f = features(scripts, 'file:///d/drv/');
  assert.is(f.length, 2);
  assert.equal([bucket(1), bucket(2), bucket(3), bucket(4), bucket(8), bucket(16), bucket(32), bucket(500)], [0, 1, 2, 3, 4, 5, 6, 7]);
  const map = new CoverageMap();
  assert.is(map.add(f), 2);
  assert.is(map.add(f), 0);
  assert.is(map.blocks, 2);
  scripts[0]!.functions[0]!.ranges[2]!.count = 1; // same block, another bucket: a new feature, no new block
  assert.is(map.add(features(scripts, 'file:///d/drv/')), 1);
  assert.is(map.blocks, 2);
  assert.is(map.features, 3);
});

test('corpus and findings: saved and loaded by name; other files ignored; a missing directory is empty; bad finding files refused', () => {
  const c = join(dir, 'corpus');
  assert.equal(loadCorpus(c), []);
  const a = encode([{ kind: 0, nth: 1, sel: 2, op: 3, value: 4 }]);
  const file = saveInput(c, a);
  assert.ok(file.endsWith(`${inputName(a)}.input`));
  saveInput(c, new Uint8Array(0));
  writeFileSync(join(c, 'README'), 'not an input');
  const back = loadCorpus(c);
  assert.is(back.length, 2);
  assert.ok(back.some((x) => x.length === a.length && x.every((v, i) => v === a[i])));
  const ff = saveFinding(join(dir, 'out'), NVME_SPEC, 7, a, { kind: 'hang', symptom: 'x' });
  const r = readFinding(ff);
  assert.is(r.kind, 'hang');
  assert.is(r.seed, 7);
  assert.is(r.input, Buffer.from(a).toString('hex'));
  assert.match(r.reproduce, /--reproduce/);
  const bad = join(dir, 'bad.json');
  writeFileSync(bad, '{"kind":"hang"}');
  assert.throws(
    () => readFinding(bad),
    (e: unknown) => e instanceof FuzzError && e.code === 'ERR_FUZZ_REPRODUCE',
  );
  assert.throws(
    () => readFinding(join(dir, 'none.json')),
    (e: unknown) => e instanceof FuzzError && e.code === 'ERR_FUZZ_REPRODUCE',
  );
  assert.throws(
    () => saveInput(join(bad, 'corpus'), a),
    (e: unknown) => e instanceof FuzzError && e.code === 'ERR_FUZZ_CORPUS',
  );
  assert.is(findingKey({ kind: 'oracle', symptom: 'canary at 0x1000 changed, 3 times' }), 'oracle:canary at # changed, # times');
});

test('CLI: argument errors say what is wrong; defaults', () => {
  const bad: [string[], RegExp][] = [
    [[], /name a campaign spec/],
    [['a.yaml', 'b.yaml'], /name one campaign spec, not 2/],
    [['a.yaml', '--seconds', '1', '--execs', '2'], /--seconds or --execs, not both/],
    [['a.yaml', '--seconds', 'x'], /--seconds x: expected a number/],
    [['a.yaml', '--execs', '0'], /--execs 0: expected a whole number from 1/],
    [['a.yaml', '--jobs', '99'], /--jobs 99/],
    [['a.yaml', '--seed'], /--seed needs a value/],
    [['a.yaml', '--seed', '1', '--seed', '2'], /--seed given twice/],
    [['a.yaml', '--frobnicate'], /unknown option --frobnicate/],
    [['a.yaml', '--reproduce', 'f.json', '--execs', '3'], /--reproduce FILE reruns one input/],
  ];
  for (const [argv, re] of bad)
    assert.throws(
      () => parseFuzzArgs(argv),
      (e: unknown) => e instanceof CliError && e.code === 'ERR_CLI_USAGE' && re.test(e.message) && /usage: dmabox campaign fuzz/.test(e.message),
      argv.join(' '),
    );
  const p = parseFuzzArgs(['s.yaml', '--seconds', '2.5', '--jobs', '0', '--json']);
  assert.is(p.seconds, 2.5);
  assert.is(p.jobs, 0);
  assert.is(p.timeoutMs, 3000);
  assert.ok(p.json);
});

test('a short run on this thread finds the planted bug; its file reproduces it verbosely, from the CLI too', async () => {
  const out = join(dir, 'planted-out');
  const executor = await InProcess.open(PLANTED_SPEC, 1, 3000, false);
  const s = await fuzz({ spec: PLANTED_SPEC, execs: 150, seed: 1, out, executor, intervalMs: 0 });
  const hit = s.found.find((f) => f.kind === 'exception' && /TypeError/.test(f.symptom));
  assert.ok(hit, `the planted TypeError was not found in ${s.execs} executions: ${JSON.stringify(s.found)}`);
  assert.ok(s.execs <= 150);
  assert.ok(s.timeline.length > 0);
  assert.ok(hit.file && existsSync(hit.file));
  const lines: string[] = [];
  const r = await reproduce(PLANTED_SPEC, hit.file, undefined, 3000, (l) => lines.push(l));
  assert.ok(r.same);
  assert.is(r.finding?.kind, 'exception');
  assert.ok(lines.some((l) => l.startsWith('directive: register')));
  assert.ok(
    lines.some((l) => l.includes('planted-driver')),
    'the stack names the driver',
  );
  const printed: string[] = [];
  assert.is(await runFuzz([PLANTED_SPEC, '--reproduce', hit.file], (x) => printed.push(x)), 0);
  assert.match(printed.join(''), /reproduced: the same kind \(exception\)/);
  // A corpus input that does not crash reproduces as "no finding".
  const clean = saveInput(join(dir, 'c2'), new Uint8Array(0));
  const r2 = await reproduce(PLANTED_SPEC, clean, 1, 3000, () => undefined);
  assert.ok(r2.same);
  assert.is(r2.finding, undefined);
});

test('coverage-guided on this thread: V8 block coverage of the driver grows the corpus; JSON summary from the CLI', async () => {
  const session = await CoverageSession.get();
  assert.is(await CoverageSession.get(), session, 'one session per thread');
  const corpus = join(dir, 'nvme-corpus');
  const s = await fuzz({ spec: NVME_SPEC, execs: 6, seed: 2, jobs: 0, corpus, intervalMs: 0 });
  assert.is(s.execs, 6);
  assert.ok(s.coverage > 50, `blocks of drivers/nvme reached: ${s.coverage}`);
  assert.ok(s.corpus >= 1 && readdirSync(corpus).length === s.corpus);
  const printed: string[] = [];
  assert.is(
    await runFuzz(
      [NVME_SPEC, '--execs', '3', '--jobs', '0', '--corpus', corpus, '--json'],
      (x) => printed.push(x),
      () => undefined,
    ),
    0,
  );
  const j = JSON.parse(printed.join('')) as Record<string, unknown>;
  for (const k of ['execs', 'execsPerSecond', 'execsPerCpuSecond', 'coverage', 'corpus', 'findings', 'seconds']) assert.type(j[k], 'number', k);
  assert.is(j['execs'], 3);
});

test('worker threads: a pool runs executions with coverage of their own', async () => {
  const s = await fuzz({ spec: NVME_SPEC, execs: 8, seed: 3, jobs: 2, intervalMs: 0 });
  assert.is(s.execs, 8);
  assert.is(s.jobs, 2);
  assert.ok(s.coverage > 50, `blocks: ${s.coverage}`);
});

test('budget errors: a budget that is not positive is refused before anything runs', async () => {
  for (const o of [{ execs: 0 }, { seconds: -1 }]) {
    const e = await fuzz({ spec: NVME_SPEC, ...o }).then(
      () => undefined,
      (x: unknown) => x,
    );
    assert.ok(e instanceof FuzzError && e.code === 'ERR_FUZZ_ARG', JSON.stringify(o));
  }
});

test.run();
