import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { area, profileText, summarizeProfile, type CpuProfile } from '../../bench/cpu-profile.js';

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber });

/** Root, idle, program, GC, two project functions and one of Node's. */
const profile: CpuProfile = {
  nodes: [
    { id: 1, callFrame: frame('(root)', '') },
    { id: 2, callFrame: frame('(idle)', '') },
    { id: 3, callFrame: frame('(garbage collector)', '') },
    { id: 4, callFrame: frame('consumeLoop', 'file:///w/dist/linkback/nbd/connection.js', 9) },
    { id: 5, callFrame: frame('poll', 'file:///w/dist/sandbox/manager/services/block.js', 99) },
    { id: 6, callFrame: frame('writeGeneric', 'node:internal/stream_base_commons', 4) },
    { id: 7, callFrame: frame('', 'file:///w/dist/linkback/nbd/connection.js', 19) },
  ],
  startTime: 0,
  endTime: 1000,
  // Each sample's time is the delta after it.
  samples: [4, 4, 5, 2, 3, 6, 7, 4],
  timeDeltas: [0, 100, 100, 200, 300, 50, 50, 100],
};

test('self time per function from samples and deltas; idle apart; shares of busy time; areas by project folder', () => {
  const s = summarizeProfile(profile);
  // A sample lasts until the next: consumeLoop 100 + 100 (+ 0 for the last sample), poll 200,
  // idle 300, GC 50, writeGeneric 50, anonymous 100.
  assert.is(s.idleUs, 300);
  assert.is(s.busyUs, 600);
  assert.equal(s.top[0], { name: 'consumeLoop (connection.js:10)', area: 'linkback/nbd', us: 200, percent: 33.3 });
  assert.equal(s.top[1], { name: 'poll (block.js:100)', area: 'sandbox/manager', us: 200, percent: 33.3 });
  assert.ok(s.top.some((t) => t.name === '(anonymous) (connection.js:20)' && t.us === 100));
  assert.ok(s.top.some((t) => t.name === '(garbage collector)' && t.area === '(garbage collector)' && t.us === 50));
  assert.equal(s.areas[0], { area: 'linkback/nbd', us: 300, percent: 50 });
  assert.ok(s.areas.some((a) => a.area === 'node internals' && a.us === 50));
  assert.is(summarizeProfile(profile, 2).top.length, 2);
});

test('a profile without samples is read by hit counts over its duration', () => {
  const s = summarizeProfile({
    nodes: [
      { id: 1, callFrame: frame('a', 'file:///x/dist/drivers/nvme/queue.js'), hitCount: 3 },
      { id: 2, callFrame: frame('(idle)', ''), hitCount: 1 },
    ],
    startTime: 0,
    endTime: 400,
  });
  assert.is(s.busyUs, 300);
  assert.is(s.idleUs, 100);
  assert.is(s.top[0]!.area, 'drivers/nvme');
});

test('areas: node internals, dependencies by package (scoped too), top-level project files, V8 entries, plain paths', () => {
  assert.is(area('node:net', 'x'), 'node internals');
  assert.is(area('file:///w/node_modules/koffi/index.js', 'x'), 'dependency koffi');
  assert.is(area('file:///w/node_modules/@scope/pkg/lib/a.js', 'x'), 'dependency @scope/pkg');
  assert.is(area('file:///w/dist/bench/linkback.js', 'x'), 'bench');
  assert.is(area('', '(program)'), '(program)');
  assert.is(area('', 'nativeThing'), '(native)');
  assert.is(area('file:///elsewhere/a.js', 'x'), '/elsewhere/a.js');
});

test('text: busy time per request when the request count is known', () => {
  const lines = profileText(summarizeProfile(profile, 1), 100);
  assert.is(lines[0], 'busy 0.6 ms, 6.00 us/request, idle 0.3 ms');
  assert.match(lines[1]!, /^ {2}by area: linkback\/nbd 50%/);
  assert.match(lines[2]!, /33.3% {2}consumeLoop \(connection.js:10\), 2.00 us\/request/);
  assert.ok(!profileText(summarizeProfile(profile, 1), 0)[0]!.includes('us/request'));
});

test.run();
