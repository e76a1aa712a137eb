import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';

test('PacketBatch: push to capacity, shift keeps order, bad capacity rejected', () => {
  const b = new PacketBatch(4);
  for (let i = 0; i < 4; i++) assert.ok(b.push(10 + i, 100 + i));
  assert.not.ok(b.push(99, 99), 'full');
  b.shift(3);
  assert.is(b.count, 1);
  assert.is(b.buf[0], 13);
  assert.is(b.len[0], 103);
  b.shift(5);
  assert.is(b.count, 0);
  assert.throws(() => new PacketBatch(0), /capacity/);
});

test.run();
