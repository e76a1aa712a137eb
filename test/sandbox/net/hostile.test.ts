/**
 * The manager never trusts what a NIC container writes into the packet rings: a hostile container
 * (fixtures/hostile-nic.ts) writing an impossible index, an unknown slot, a duplicate, an oversized
 * length or a TX slot it never had is killed, and restarted per policy; the manager, and a well
 * behaved sandbox beside it, carry on.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { fileURLToPath } from 'node:url';
import { extname } from 'node:path';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { arpFrame, arpReplyFrom, ipv4 } from '../../../sim/net/packets.js';
import type { SandboxNicPort } from '../../../sandbox/manager/services/net.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { until } from '../helpers.js';
import { nicPolicy, receive, sendFrame } from './helpers.js';

const here = fileURLToPath(import.meta.url);
const FIXTURE = fileURLToPath(new URL(`./fixtures/hostile-nic${extname(here)}`, import.meta.url));
const HOST_IP = ipv4('10.0.2.15'),
  PEER_IP = ipv4('10.0.2.2');

async function arpWorks(port: SandboxNicPort): Promise<void> {
  await sendFrame(port, arpFrame('request', port.mac, HOST_IP, new Uint8Array(6), PEER_IP));
  const got: Uint8Array[] = [];
  await receive(port, got, 1);
  assert.ok(arpReplyFrom(got[0]!, got[0]!.length, PEER_IP), 'ARP answered');
}

/** Call rx() as a bridge would, until the port stops being attached. */
async function drain(port: SandboxNicPort, ms: number): Promise<number> {
  const b = new PacketBatch(32);
  let frames = 0;
  const end = Date.now() + ms;
  while (port.isAttached && Date.now() < end) {
    await port.waitRx(20);
    b.clear();
    frames += port.rx(b);
    port.rxFree(b);
  }
  return frames;
}

for (const [mode, says] of [
  ['index', 'RX completion index moved'],
  ['slot', 'names slot 60000'],
  ['dup', 'does not hold (a duplicate)'],
  ['len', 'RX completion of 4000 bytes'],
  ['txc', 'TX completion'],
] as const) {
  test(`a container writing ${mode} garbage into the rings is killed; the manager and a good sandbox carry on`, async () => {
    const bad = new Supervisor(nicPolicy(`net-hostile-${mode}`, { extra: '' }), { entry: FIXTURE });
    const good = new Supervisor(nicPolicy('net-good'));
    try {
      await Promise.all([bad.start(), good.start()]);
      const port = bad.nic!;
      await drain(port, 10_000);
      assert.is(port.isAttached, false, 'the port stopped reading the ring');
      await until('the kill', () => bad.events.some((e) => e.kind === 'exit' && /SIGKILL/.test(e.text)), 10_000);
      assert.ok(port.counters.violations >= 1);
      assert.ok(port.counters.lastViolation!.includes(says), `violation says '${says}': ${port.counters.lastViolation}`);
      assert.ok(
        bad.events.some((e) => e.kind === 'stop' && e.text.includes('violation: net ring')),
        'the kill says why',
      );
      if (mode === 'dup') assert.ok(port.counters.rxFrames <= 1, 'at most the first, valid, entry was taken');
      // it is restarted per policy (and misbehaves again), while the good one serves
      await until('a restart', () => bad.restarts >= 1, 10_000);
      await arpWorks(good.nic!);
      assert.is(good.nic!.counters.violations, 0);
    } finally {
      await Promise.all([bad.stop(), good.stop()]);
    }
  });
}

test('kill -9 of the container mid-stream: it restarts and traffic resumes, nothing corrupt', async () => {
  const { TestWire } = await import('./wire.js');
  const { testFrame, checkFrame } = await import('./helpers.js');
  const tw = await TestWire.open();
  const s = new Supervisor(nicPolicy('net-kill9'), tw.options());
  try {
    await s.start();
    const port = s.nic!;
    await until('the device process on the wire', () => tw.connected, 5000);
    const wire = tw.frames;
    const peerMac = Uint8Array.from([0x02, 0, 0, 0, 0, 0x42]);
    const total = 1500;
    let killedAt = -1;
    for (let i = 0; i < total; i++) {
      if (i === 600) {
        killedAt = i;
        process.kill(s.pid!, 'SIGKILL');
      }
      await sendFrame(port, testFrame(peerMac, port.mac, i, 200), 20_000);
    }
    await until('the last frame on the wire', () => wire.length > 0 && checkFrame(wire[wire.length - 1]!, 200).seq === total - 1, 20_000);
    assert.is(s.restarts, 1);
    assert.is(port.counters.attaches, 2);
    let prev = -1;
    for (const f of wire) {
      const c = checkFrame(f, 200);
      assert.ok(c.intact, `frame ${c.seq} intact`);
      assert.ok(c.seq > prev, `order kept (${c.seq} after ${prev})`);
      prev = c.seq;
    }
    const missing = total - wire.length;
    // lost: what the dead container held (counted), plus what its driver had taken and not sent (the old device's)
    assert.ok(missing <= port.counters.lostInRestart + 2 * 64, `${missing} missing, ${port.counters.lostInRestart} counted lost`);
    assert.ok(
      wire.some((f) => checkFrame(f, 200).seq > killedAt),
      'frames after the kill went out',
    );
    console.log(
      `    kill -9 at frame ${killedAt}: ${wire.length}/${total} on the wire, ${missing} missing, ${port.counters.lostInRestart} counted lost in the restart`,
    );
    // and RX works on the new container: 100 frames from the wire, intact and in order
    assert.is(tw.connections, 2, 'the new device process is on the wire');
    const got: Uint8Array[] = [];
    for (let i = 0; i < 100; i++) {
      tw.send(testFrame(port.mac, peerMac, 10_000 + i, 300));
      if (i % 32 === 31) await receive(port, got, i + 1);
    }
    await receive(port, got, 100);
    got.forEach((f, i) => {
      const c = checkFrame(f, 300);
      assert.ok(c.intact && c.seq === 10_000 + i, `received frame ${i} intact, in order`);
    });
  } finally {
    await s.stop();
    tw.close();
  }
});

test.run();
