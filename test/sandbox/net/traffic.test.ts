/**
 * A sandboxed e1000e (its own container, the simulated 82574L in its device process) moving frames
 * through the packet rings: ARP and ping with the echo peer, thousands of frames each way with a
 * test's end of the wire (wire.ts: the device process's cable to a socket; payloads, order), in
 * polling and MSI-X modes, and the rings' slots all back home afterwards.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { TestWire } from './wire.js';
import { deviceCounter, until } from '../helpers.js';
import { ECHO_PEER_MAC } from '../../../sim/net/peer.js';
import { arpFrame, arpReplyFrom, icmpEcho, icmpEchoTo, ipv4 } from '../../../sim/net/packets.js';
import { checkFrame, nicPolicy, receive, sendFrame, testFrame } from './helpers.js';

const HOST_IP = ipv4('10.0.2.15'),
  PEER_IP = ipv4('10.0.2.2');

test('ARP and ping to the echo peer (10.0.2.2) through the container', async () => {
  const s = new Supervisor(nicPolicy('net-echo'));
  try {
    await s.start();
    const port = s.nic!;
    assert.ok(port.linkUp(), 'link up');
    await sendFrame(port, arpFrame('request', port.mac, HOST_IP, new Uint8Array(6), PEER_IP));
    const got: Uint8Array[] = [];
    await receive(port, got, 1);
    const peerMac = arpReplyFrom(got[0]!, got[0]!.length, PEER_IP);
    assert.ok(peerMac, 'an ARP reply from 10.0.2.2');
    assert.equal([...peerMac!], [...ECHO_PEER_MAC]);
    for (let seq = 1; seq <= 20; seq++) {
      const payload = Uint8Array.from({ length: 56 }, (_, i) => (i + seq) & 0xff);
      await sendFrame(port, icmpEcho('request', port.mac, peerMac!, HOST_IP, PEER_IP, 0x1234, seq, payload));
      const r: Uint8Array[] = [];
      await receive(port, r, 1);
      const echo = icmpEchoTo(r[0]!, r[0]!.length, HOST_IP, 'reply');
      assert.ok(echo, `echo reply ${seq}`);
      assert.is(echo!.seq, seq);
      assert.equal([...echo!.payload], [...payload]);
    }
    await until('the device process to report the echo replies', () => deviceCounter(s, 'peer.echoReplies') === 20, 5000);
    const net = s.status().net as { attached: boolean; link: boolean; txFrames: number; rxFrames: number };
    assert.equal([net.attached, net.link, net.txFrames, net.rxFrames], [true, true, 21, 21], 'dmabox status shows the packet counters');
    assert.is(port.counters.violations, 0);
  } finally {
    await s.stop();
  }
});

async function exchange(interrupts: 'polling' | 'msix', frames: number): Promise<void> {
  const wire = await TestWire.open();
  const s = new Supervisor(nicPolicy(`net-bulk-${interrupts}`, { interrupts }), wire.options());
  try {
    await s.start();
    const port = s.nic!;
    await until('the device process on the wire', () => wire.connected, 5000);
    const fromHost = wire.frames;
    const peerMac = Uint8Array.from([0x02, 0, 0, 0, 0, 0x99]);
    // host -> peer: sizes cycle through 60..1514
    const lenOf = (i: number): number => 60 + ((i * 97) % (1514 - 60 + 1));
    for (let i = 0; i < frames; i++) await sendFrame(port, testFrame(peerMac, port.mac, i, lenOf(i)));
    const end = Date.now() + 20_000;
    while (fromHost.length < frames && Date.now() < end) await new Promise((r) => setTimeout(r, 5));
    assert.is(fromHost.length, frames, 'every frame the host sent reached the wire');
    fromHost.forEach((f, i) => {
      const c = checkFrame(f, lenOf(i));
      assert.is(c.seq, i, 'in order');
      assert.ok(c.intact, `frame ${i} intact`);
      assert.is(f.length, lenOf(i));
    });
    // peer -> host, in bursts the NIC's RX ring can hold; each burst drained before the next
    const got: Uint8Array[] = [];
    let accepted = 0;
    for (let i = 0; i < frames; i += 32) {
      for (let j = i; j < Math.min(frames, i + 32); j++) {
        // The driver's RDT write reaches the model through the register mailbox a turn later: a
        // frame offered before that finds no descriptor (a real NIC drops it too); the device
        // process's end of the wire offers it again.
        wire.send(testFrame(port.mac, peerMac, j, lenOf(j)));
        accepted++;
      }
      await receive(port, got, accepted);
    }
    assert.is(got.length, frames);
    got.forEach((f, i) => {
      const c = checkFrame(f, lenOf(i));
      assert.is(c.seq, i);
      assert.ok(c.intact, `frame ${i} intact`);
      assert.is(f.length, Math.max(60, lenOf(i)));
    });
    assert.is(port.counters.violations, 0);
    assert.is(port.counters.txFrames, frames);
    assert.is(port.counters.rxFrames, frames);
  } finally {
    await s.stop();
    wire.close();
  }
}

test('3000 frames each way, polling: payloads and order intact', async () => {
  await exchange('polling', 3000);
});

test('2000 frames each way, MSI-X: payloads and order intact', async () => {
  await exchange('msix', 2000);
});

test.run();
