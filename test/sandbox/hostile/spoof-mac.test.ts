/**
 * Hostile NIC containers and the host's TAP: after READY, a confined e1000e container hands the
 * manager received frames with forged addresses (the sandbox's own MAC as source, a multicast
 * source, another station as destination). None reaches the port's consumer (the TAP bridge, here
 * the test calling rx() as it does); the port counts them; an honest frame still goes through; a
 * flood of them is a violation (a kill).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { SandboxNicPort } from '../../../sandbox/manager/services/net.js';
import { until } from '../helpers.js';
import { nicPolicy } from '../net/helpers.js';
import { attacker, attackDone, reports } from './helpers.js';

/** rx() as the TAP bridge calls it, until `done()` and half a second more (20 s at most): the frames' source and destination MACs. */
async function consume(port: SandboxNicPort, done: () => boolean): Promise<{ dst: string; src: string }[]> {
  const got: { dst: string; src: string }[] = [];
  const b = new PacketBatch(32);
  const hex = (o: number) => Array.from(port.rxBytes.subarray(o, o + 6), (x) => x.toString(16).padStart(2, '0')).join(':');
  const cap = Date.now() + 20_000;
  let end = Infinity;
  while (Date.now() < Math.min(end, cap)) {
    if (end === Infinity && done()) end = Date.now() + 500;
    await port.waitRx(20);
    b.clear();
    const k = port.rx(b);
    for (let i = 0; i < k; i++) {
      const off = port.rxOffset(b.buf[i]!);
      got.push({ dst: hex(off), src: hex(off + 6) });
    }
    port.rxFree(b);
  }
  return got;
}

test('frames with forged addresses never reach the consumer, and are counted', async () => {
  const s = attacker(nicPolicy('hostile-spoof-mac'), 'spoof-mac', ['9']);
  try {
    await s.start();
    const port = s.nic!;
    const got = consume(port, () => reports(s, 'spoof-mac').some((l) => l.startsWith('handed over')));
    const lines = await attackDone(s, 'spoof-mac');
    const frames = await got;
    assert.ok(lines.includes('sandbox mac 52:54:00:12:34:56'), lines.join('\n'));
    assert.equal(frames, [{ dst: '52:54:00:12:34:56', src: '52:55:0a:00:02:02' }], 'only the honest frame');
    assert.is(port.counters.spoofed, 9);
    assert.is(port.counters.violations, 0, 'nine in a second is under the limit');
    assert.is(s.crashes, 0);
    assert.equal((s.status().net as { spoofed: number }).spoofed, 9);
  } finally {
    await s.stop();
  }
});

test('a flood of forged frames is a violation: the container is killed', async () => {
  const s = attacker(nicPolicy('hostile-spoof-flood'), 'spoof-mac', ['200']);
  try {
    await s.start();
    const port = s.nic!;
    const got = consume(port, () => s.crashes >= 1);
    await until('the kill', () => s.crashes >= 1, 10_000);
    const frames = await got;
    assert.equal(frames, [], 'no forged frame got through');
    assert.ok(port.counters.spoofed > 64);
    assert.ok(
      s.events.some((e) => e.kind === 'violation' && /forged/.test(e.text)),
      s.events.map((e) => e.text).join('\n'),
    );
  } finally {
    await s.stop();
  }
});

test.run();
