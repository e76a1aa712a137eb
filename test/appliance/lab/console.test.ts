import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { LineSplitter, decideOutcome, decodeDebugExit, newConsoleState, readConsoleLine, stamp } from '../../../appliance/lab/console.js';

test('lines split on LF with the serial console CR stripped, across chunks; flush gives the rest', () => {
  const lines: string[] = [];
  const s = new LineSplitter((l) => lines.push(l));
  s.push('dmabox-lab: in');
  s.push('it 2.5\r\nsecond\r');
  s.push('\nthird');
  assert.equal(lines, ['dmabox-lab: init 2.5', 'second']);
  s.flush();
  assert.equal(lines, ['dmabox-lab: init 2.5', 'second', 'third']);
});

test('timestamps are seconds since QEMU started, fixed width', () => {
  assert.is(stamp(6139.8), '[   6.140]');
  assert.is(stamp(123456), '[ 123.456]');
});

test('markers from /init are read: init, bound devices, run, done, exit', () => {
  const st = newConsoleState();
  const lines = [
    '[    2.49] Run /init as init process',
    'dmabox-lab: init 2.59',
    'dmabox-lab: modules loaded',
    'dmabox-lab: bound 0000:00:01.0 0x1b36:0x0010 group 1',
    'dmabox-lab: bound 0000:00:02.0 0x8086:0x10d3 group 2',
    'dmabox-lab: run 3.31',
    'some output',
    'dmabox-lab: done 5.05',
    'dmabox-lab: exit 3',
  ];
  lines.forEach((l, i) => readConsoleLine(st, l, i * 100));
  assert.is(st.initAtMs, 100);
  assert.is(st.initUptime, 2.59);
  assert.equal(st.bound, [
    { bdf: '0000:00:01.0', id: '0x1b36:0x0010', group: 1 },
    { bdf: '0000:00:02.0', id: '0x8086:0x10d3', group: 2 },
  ]);
  assert.is(st.runAtMs, 500);
  assert.is(st.doneAtMs, 700);
  assert.is(st.exitStatus, 3);
  assert.equal(decideOutcome({ code: 7, signal: null }, st), { kind: 'exited', status: 3 });
});

test("the rc file wins over the console marker and over QEMU's status", () => {
  const st = newConsoleState();
  readConsoleLine(st, 'dmabox-lab: run 1', 1);
  readConsoleLine(st, 'dmabox-lab: exit 200', 2);
  assert.equal(decideOutcome({ code: ((200 << 1) | 1) & 255, signal: null }, st, 200), { kind: 'exited', status: 200 });
});

test("only QEMU's status: isa-debug-exit (rc << 1) | 1 is decoded; 1 and 0 are not trusted", () => {
  const st = newConsoleState();
  assert.equal(decideOutcome({ code: 7, signal: null }, st), { kind: 'exited', status: 3 });
  assert.is(decideOutcome({ code: 0, signal: null }, st).kind, 'died');
  assert.is(decideOutcome({ code: 1, signal: null }, st).kind, 'died');
  assert.is(decideOutcome({ code: 2, signal: null }, st).kind, 'died');
  assert.equal(decideOutcome({ code: null, signal: 'SIGKILL' }, st), { kind: 'died', reason: 'QEMU was killed by SIGKILL' });
  assert.equal(
    decideOutcome({ code: null, signal: 'SIGSEGV' }, st),
    { kind: 'died', reason: 'QEMU itself crashed (SIGSEGV)', emulatorCrash: true },
    'a fault signal is the emulator crashing, told apart from a kill',
  );
  assert.is(decodeDebugExit(1), 0);
  assert.is(decodeDebugExit(0x55), 0x2a);
  assert.is(decodeDebugExit(4), undefined);
});

test('an /init error or a kernel panic is not an exit status of the command', () => {
  const st = newConsoleState();
  readConsoleLine(st, 'dmabox-lab: error 0000:00:01.0 (0x1b36:0x0010) did not bind to vfio-pci', 1);
  readConsoleLine(st, 'dmabox-lab: exit 125', 2);
  assert.equal(decideOutcome({ code: 251, signal: null }, st, 125), { kind: 'init-failed', reason: '0000:00:01.0 (0x1b36:0x0010) did not bind to vfio-pci' });
  const p = newConsoleState();
  readConsoleLine(p, '[    1.0] Kernel panic - not syncing: VFS: Unable to mount root fs', 1);
  const o = decideOutcome({ code: 0, signal: null }, p);
  assert.is(o.kind, 'died');
  assert.match((o as { reason: string }).reason, /Kernel panic/);
});

test.run();
