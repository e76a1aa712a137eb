/**
 * The TAP bridge over a sandboxed NIC without root: the TapBridge on a fake TAP (FrameIo) and the
 * SandboxNicPort of a real container, joined so the port suspends and resumes the bridge. ARP and
 * pings to the echo peer come back through the TAP; frames the host sends while the container is
 * dead (kill -9) wait in the bridge and go out on the next container. Also the no-root self-check.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../../sandbox/manager/supervisor.js';
import { TapBridge } from '../../../linkback/tap/bridge.js';
import { pingThroughPort } from '../../../sandbox/manager/services/net-selfcheck.js';
import { ECHO_PEER_MAC } from '../../../sim/net/peer.js';
import { arpFrame, arpReplyFrom, icmpEcho, icmpEchoTo, ipv4 } from '../../../sim/net/packets.js';
import { FakeTap } from '../tap/fakes.js';
import { nicPolicy } from '../../sandbox/net/helpers.js';
import { until } from '../../sandbox/helpers.js';

const HOST = ipv4('10.0.2.15'),
  PEER = ipv4('10.0.2.2');

function echoes(tap: FakeTap): Set<number> {
  const seqs = new Set<number>();
  for (const f of tap.written) {
    const e = icmpEchoTo(f, f.length, HOST, 'reply');
    if (e !== null) seqs.add(e.seq);
  }
  return seqs;
}

test('bridge over the rings: ARP and pings answered; pings sent while the container is dead go out on the next one', async () => {
  const s = new Supervisor(nicPolicy('tapsb-fake', { interrupts: 'msix' }));
  const tap = new FakeTap();
  let bridge: TapBridge | undefined;
  try {
    await s.start();
    const port = s.nic!;
    bridge = new TapBridge(tap, port);
    port.join(bridge);
    bridge.start();
    tap.push(arpFrame('request', port.mac, HOST, new Uint8Array(6), PEER));
    await until('the ARP reply', () => tap.written.some((f) => arpReplyFrom(f, f.length, PEER) !== null), 5000);
    const ping = (seq: number): Uint8Array =>
      icmpEcho(
        'request',
        port.mac,
        ECHO_PEER_MAC,
        HOST,
        PEER,
        7,
        seq,
        Uint8Array.from({ length: 56 }, (_, i) => (i * seq) & 0xff),
      );
    for (let seq = 1; seq <= 10; seq++) tap.push(ping(seq));
    await until('10 echo replies', () => echoes(tap).size === 10, 5000);

    process.kill(s.pid!, 'SIGKILL');
    await until('the port detached', () => !port.isAttached, 5000);
    for (let seq = 11; seq <= 20; seq++) tap.push(ping(seq));
    await until('the restart', () => s.state === 'running' && port.isAttached, 10_000);
    await until('the pings sent during the restart answered', () => [...Array(10).keys()].every((i) => echoes(tap).has(11 + i)), 10_000);
    const c = bridge.counters();
    assert.is(c.portSwaps, 1, 'the bridge was suspended and resumed once');
    assert.is(c.swapDrops, 0);
    assert.is(port.counters.violations, 0);
    assert.is(port.counters.attaches, 2);
    // each reply intact: the payload is the request's
    for (const f of tap.written) {
      const e = icmpEchoTo(f, f.length, HOST, 'reply');
      if (e)
        assert.ok(
          e.payload.every((b, i) => b === ((i * e.seq) & 0xff)),
          `reply ${e.seq} intact`,
        );
    }
  } finally {
    await bridge?.stop();
    await s.stop();
  }
});

test('self-check (the no-root linkback): ARP and 3 pings to 10.0.2.2 through the rings', async () => {
  const s = new Supervisor(nicPolicy('tapsb-check'));
  try {
    await s.start();
    const r = await pingThroughPort(s.nic!, { hostIp: '10.0.2.15', peerIp: '10.0.2.2', count: 3, timeoutMs: 5000 });
    assert.is(r.peerMac, '52:55:0a:00:02:02');
    assert.is(r.rtts.length, 3);
  } finally {
    await s.stop();
  }
});

test('self-check against a silent peer fails, bounded, saying why', async () => {
  const s = new Supervisor(nicPolicy('tapsb-silent', { peer: 'none' }));
  try {
    await s.start();
    const t0 = Date.now();
    try {
      await pingThroughPort(s.nic!, { hostIp: '10.0.2.15', peerIp: '10.0.2.2', count: 1, timeoutMs: 500 });
      assert.unreachable('a silent peer answered');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_SANDBOX_NET_TIMEOUT');
      assert.match((e as Error).message, 'no ARP reply from 10.0.2.2');
    }
    assert.ok(Date.now() - t0 < 3000, 'bounded');
  } finally {
    await s.stop();
  }
});

test.run();
