import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PassThrough } from 'node:stream';
import { BYTES_PER_TURN, LINES_PER_SECOND, StdioLines } from '../../sandbox/manager/stdio-lines.js';
import { LogLevel } from '../../sandbox/abi/hypercall/index.js';

function lines(now: { t: number }) {
  const logged: string[] = [];
  const s = new StdioLines(
    (_level, text) => logged.push(text),
    () => now.t,
  );
  return { s, logged };
}

test('lines are logged cut, cleaned and bounded per second; the drop is said when the second ends', () => {
  const now = { t: 0 };
  const { s, logged } = lines(now);
  s.take(Buffer.from(`one\n\n  \n${'y'.repeat(600)}\nesc\x1b[31m\n`), LogLevel.INFO);
  assert.equal(logged, ['[stdio] one', `[stdio] ${'y'.repeat(512)}`, '[stdio] esc?[31m']);
  s.take(Buffer.from('z\n'.repeat(100)), LogLevel.INFO);
  assert.is(logged.length, LINES_PER_SECOND);
  now.t = 1000;
  s.take(Buffer.from('next\n'), LogLevel.INFO);
  assert.equal(logged.slice(-2), [`[stdio] 53 line(s) dropped (more than ${LINES_PER_SECOND} a second)`, '[stdio] next']);
});

test('at most BYTES_PER_TURN bytes are read a turn: the stream is paused until the next turn', async () => {
  const now = { t: 0 };
  const { s } = lines(now);
  const stream = new PassThrough();
  const taken: number[] = [];
  const take = s.take.bind(s);
  s.take = (chunk, level) => {
    taken.push(chunk.length);
    take(chunk, level);
  };
  s.attach(stream, LogLevel.INFO);
  for (let i = 0; i < 8; i++) stream.write(Buffer.alloc(BYTES_PER_TURN / 2, 'x\n'));
  // within this turn and its microtasks: at most one turn's worth
  await new Promise((r) => process.nextTick(r));
  await Promise.resolve();
  const first = taken.reduce((a, b) => a + b, 0);
  assert.ok(first <= BYTES_PER_TURN, `${first} bytes in the first turn`);
  // the rest follows over the next turns
  for (let i = 0; i < 10; i++) await new Promise((r) => setImmediate(r));
  assert.is(
    taken.reduce((a, b) => a + b, 0),
    4 * BYTES_PER_TURN,
  );
});

test.run();
