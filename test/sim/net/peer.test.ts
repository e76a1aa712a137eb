/**
 * The simulated link partner (sim/net/peer.ts) a simulated NIC is cabled to in its device process:
 * it answers ARP for its address and ICMP echo requests to it, counts what it saw, stays silent
 * when it is `none`, and goes quiet once unplugged.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { FrameSink, WirePort } from '../../../sim/wire.js';
import { attachPeer, ECHO_PEER_IP, ECHO_PEER_MAC } from '../../../sim/net/peer.js';
import { arpFrame, arpReplyFrom, icmpEcho, icmpEchoTo, ipv4 } from '../../../sim/net/packets.js';

/** A NIC's wire side: what it sends goes to the attached sink; what it receives is kept. */
class FakeNic implements WirePort {
  sink: FrameSink | null = null;
  readonly received: Uint8Array[] = [];
  attachWire(sink: FrameSink | null): void {
    this.sink = sink;
  }
  receive(frame: Uint8Array, len: number): boolean {
    this.received.push(frame.slice(0, len));
    return true;
  }
  transmit(f: Uint8Array): void {
    this.sink!(f, f.length);
  }
}

const MAC = new Uint8Array([0x52, 0x54, 0, 0x12, 0x34, 0x56]);
const ME = ipv4('10.0.2.15');
const PEER = ipv4(ECHO_PEER_IP);
const tick = (): Promise<void> => new Promise((r) => setTimeout(r, 0));

test('echo: answers ARP for its address and pings to it, counts them; ignores the rest', async () => {
  const nic = new FakeNic();
  const peer = attachPeer(nic, 'echo');
  nic.transmit(arpFrame('request', MAC, ME, new Uint8Array(6), PEER));
  nic.transmit(arpFrame('request', MAC, ME, new Uint8Array(6), ipv4('10.0.2.99')));
  nic.transmit(icmpEcho('request', MAC, ECHO_PEER_MAC, ME, PEER, 7, 1, new Uint8Array([1, 2, 3])));
  await tick();
  assert.is(peer.counters.seen, 3);
  assert.is(peer.counters.arpReplies, 1, 'only the ARP for its own address is answered');
  assert.is(peer.counters.echoReplies, 1);
  assert.is(nic.received.length, 2);
  assert.equal(arpReplyFrom(nic.received[0]!, nic.received[0]!.length, PEER), ECHO_PEER_MAC);
  const echo = icmpEchoTo(nic.received[1]!, nic.received[1]!.length, ME, 'reply');
  assert.ok(echo !== null, 'an echo reply to the sender');
  assert.is(echo!.id, 7);
  assert.is(echo!.seq, 1);
  assert.equal([...echo!.payload], [1, 2, 3]);
});

test('none counts but never answers; unplugged, it is off the wire', async () => {
  const nic = new FakeNic();
  const silent = attachPeer(nic, 'none');
  nic.transmit(arpFrame('request', MAC, ME, new Uint8Array(6), PEER));
  await tick();
  assert.is(silent.counters.seen, 1);
  assert.is(nic.received.length, 0);
  silent.unplug();
  assert.is(nic.sink, null, 'the cable is gone');
  const echo = attachPeer(nic, 'echo');
  nic.transmit(arpFrame('request', MAC, ME, new Uint8Array(6), PEER));
  echo.unplug();
  await tick();
  assert.is(echo.counters.arpReplies, 0, 'a reply queued before the unplug is not sent after it');
  assert.is(nic.received.length, 0);
});

test.run();
