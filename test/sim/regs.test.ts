import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { RegisterTable } from '../../sim/regs.js';
import { DeviceWork } from '../../sim/sched.js';

const code = (fn: () => unknown): string => {
  try {
    fn();
  } catch (e) {
    return (e as { code: string }).code;
  }
  return 'no error';
};

test('registers and ranges dispatch by offset; unclaimed offsets read 0 and are counted', () => {
  let cc = 0;
  const bells: [number, number][] = [];
  const t = new RegisterTable(
    0x2000,
    [
      {
        offset: 0x14,
        name: 'CC',
        read: () => cc,
        write: (v) => {
          cc = v;
        },
      },
      { offset: 0x1c, name: 'CSTS', read: () => 1 },
      { offset: 0x20, name: 'NSSR', write: () => undefined },
    ],
    [{ start: 0x1000, end: 0x1010, name: 'doorbells', write: (off, v) => bells.push([off, v]) }],
  );
  t.write32(0x14, 0x460001);
  assert.is(t.read32(0x14), 0x460001);
  t.write32(0x1c, 5);
  assert.is(t.read32(0x1c), 1, 'a register without write is read-only');
  assert.is(t.read32(0x20), 0, 'a register without read reads 0');
  t.write32(0x1008, 3);
  assert.equal(bells, [[0x1008, 3]]);
  assert.is(t.read32(0x1004), 0);
  assert.is(t.unclaimed, 0, 'named registers and ranges are claimed');
  t.read32(0x100);
  t.write32(0x104, 1);
  assert.is(t.unclaimed, 2);
  assert.is(t.nameAt(0x100c), 'doorbells');
  t.write32(0x14, 0xffffffff);
  assert.is(t.read32(0x14), 0xffffffff, 'values are unsigned');
});

test('table construction errors: misaligned, outside, overlapping', () => {
  assert.is(
    code(() => new RegisterTable(10, [])),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(() => new RegisterTable(0x100, [{ offset: 2, name: 'X' }])),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(() => new RegisterTable(0x100, [{ offset: 0x100, name: 'X' }])),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(
      () =>
        new RegisterTable(0x100, [
          { offset: 0, name: 'A' },
          { offset: 0, name: 'B' },
        ]),
    ),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(() => new RegisterTable(0x100, [{ offset: 8, name: 'A' }], [{ start: 0, end: 0x10, name: 'R' }])),
    'ERR_SIM_ARG',
  );
  assert.is(
    code(() => new RegisterTable(0x100, [], [{ start: 0x80, end: 0x200, name: 'R' }])),
    'ERR_SIM_ARG',
  );
});

test('work: sync runs inside the kick and never re-enters; a kick during the run runs it again', () => {
  const owner = {
    hung: false,
    failed: [] as unknown[],
    workFailed(e: unknown) {
      this.failed.push(e);
    },
  };
  let runs = 0;
  const w: DeviceWork = new DeviceWork(
    owner,
    () => {
      runs++;
      if (runs === 1) w.kick();
    },
    'sync',
  );
  w.kick();
  assert.is(runs, 2);
  assert.is(w.runs, 2);
});

test('work: hung drops kicks and counts them; resumed runs once; a throw goes to the owner', async () => {
  const owner = {
    hung: true,
    failed: [] as unknown[],
    workFailed(e: unknown) {
      this.failed.push(e);
    },
  };
  let runs = 0;
  const w = new DeviceWork(
    owner,
    () => {
      runs++;
      if (runs === 2) throw new Error('bug');
    },
    'deferred',
  );
  w.kick();
  w.kick();
  assert.is(w.missed, 2);
  owner.hung = false;
  w.resumed();
  await new Promise((r) => setImmediate(r));
  assert.is(runs, 1);
  w.kick();
  await new Promise((r) => setImmediate(r));
  assert.is(owner.failed.length, 1);
  // Hung between the kick and the deferred run: the run is skipped and counted.
  w.kick();
  owner.hung = true;
  await new Promise((r) => setImmediate(r));
  assert.is(runs, 2);
  assert.is(w.missed, 1);
});

test.run();
