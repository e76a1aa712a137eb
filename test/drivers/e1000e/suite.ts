/**
 * The driver suite written once and run on every platform: the simulator (with a stand-in for
 * slirp's gateway on the simulated wire) and the lab (QEMU's e1000e on real VFIO, slirp behind it).
 * The driver itself sends an ARP request for 10.0.2.2 and an ICMP echo request from 10.0.2.15, and
 * must receive the replies.
 */
import { suite } from 'uvu';
import * as assert from 'uvu/assert';
import type { E1000e } from '../../../drivers/e1000e/device.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { arpRequest, parseArpReply, icmpEchoRequest, parseIcmpEcho, GUEST_IP, GATEWAY_IP } from './packets.js';

export interface NicUnderTest {
  nic: E1000e;
  /** Stop the driver and release the platform. */
  done(): Promise<void>;
}

/** Receive until `match` returns a value or `timeoutMs` passes (every frame is freed after `match` saw it). */
export async function receiveUntil<T>(nic: E1000e, timeoutMs: number, match: (f: Uint8Array) => T | null): Promise<T | null> {
  const batch = new PacketBatch(32);
  const deadline = Date.now() + timeoutMs;
  for (;;) {
    const left = deadline - Date.now();
    if (left <= 0) return null;
    if (!(await nic.waitRx(left))) return null;
    nic.rx(batch);
    let found: T | null = null;
    for (let i = 0; i < batch.count && found === null; i++) found = match(nic.rxData(batch.buf[i]!, batch.len[i]!));
    nic.rxFree(batch);
    if (found !== null) return found;
  }
}

export function gatewaySuite(name: string, open: () => Promise<NicUnderTest>, timeoutMs: number) {
  const s = suite<{ t?: NicUnderTest; gatewayMac?: Uint8Array }>(name);

  s.before(async (ctx) => {
    ctx.t = await open();
  });
  s.after(async (ctx) => {
    await ctx.t?.done();
  });

  s('the link is up at 1000 Mb/s full duplex and the MAC is a unicast address', (ctx) => {
    const { nic } = ctx.t!;
    assert.equal(nic.link(), { up: true, speedMbps: 1000, fullDuplex: true });
    assert.is(nic.mac[0]! & 1, 0, 'unicast');
    assert.ok(
      nic.mac.some((b) => b !== 0),
      'not all zeros',
    );
  });

  s('an ARP request for 10.0.2.2 is answered with the gateway MAC, addressed to us', async (ctx) => {
    const { nic } = ctx.t!;
    const before = nic.stats();
    assert.ok(nic.send(arpRequest(nic.mac, GUEST_IP, GATEWAY_IP)), 'the request was queued');
    const reply = await receiveUntil(nic, timeoutMs, (f) => {
      const a = parseArpReply(f);
      return a !== null && a.senderIp.join('.') === '10.0.2.2' ? a : null;
    });
    assert.ok(reply, `an ARP reply from 10.0.2.2 within ${timeoutMs} ms`);
    assert.equal([...reply!.targetMac], [...nic.mac], 'the reply is for our MAC');
    assert.equal([...reply!.targetIp], [...GUEST_IP]);
    assert.is(reply!.senderMac[0]! & 1, 0, 'the gateway MAC is unicast');
    ctx.gatewayMac = reply!.senderMac;
    const after = nic.stats();
    assert.ok(after.device.GPTC - before.device.GPTC >= 1, `GPTC counted the request (${before.device.GPTC} -> ${after.device.GPTC})`);
    assert.ok(after.device.GPRC - before.device.GPRC >= 1, `GPRC counted the reply (${before.device.GPRC} -> ${after.device.GPRC})`);
  });

  s('an ICMP echo request from 10.0.2.15 to 10.0.2.2 gets an echo reply with the same id, sequence and payload', async (ctx) => {
    const { nic } = ctx.t!;
    assert.ok(ctx.gatewayMac, 'the ARP test found the gateway MAC');
    const payload = new Uint8Array(56).map((_, i) => (i * 37 + 11) & 0xff);
    const id = 0x4d35,
      seq = 7;
    assert.ok(nic.send(icmpEchoRequest(nic.mac, ctx.gatewayMac!, GUEST_IP, GATEWAY_IP, id, seq, payload)));
    const reply = await receiveUntil(nic, timeoutMs, (f) => {
      const e = parseIcmpEcho(f);
      return e !== null && e.type === 0 && e.id === id ? e : null;
    });
    assert.ok(reply, `an echo reply within ${timeoutMs} ms`);
    assert.is(reply!.seq, seq);
    assert.equal([...reply!.srcIp], [...GATEWAY_IP]);
    assert.equal([...reply!.dstIp], [...GUEST_IP]);
    assert.equal([...reply!.payload], [...payload], 'payload echoed intact');
    assert.ok(reply!.checksumOk, 'IP and ICMP checksums verify');
  });

  s('the interrupt mode did what it says: MSI-X or INTx interrupts reached the driver, polling saw none', async (ctx) => {
    const { nic } = ctx.t!;
    // Interrupt handlers run from the event loop's poll phase (an eventfd on VFIO, setImmediate in
    // the simulator), which awaiting promises alone never reaches: give the loop a bounded chance.
    const deadline = Date.now() + 2000;
    while (nic.interrupts !== 'poll' && nic.stats().interrupts < 1 && Date.now() < deadline) await new Promise((r) => setTimeout(r, 20));
    const n = nic.stats().interrupts;
    // Coalesced (platform.ts IrqVector): two replies may arrive as one call.
    if (nic.interrupts !== 'poll') assert.ok(n >= 1, `${nic.interrupts} interrupts delivered (saw ${n})`);
    else assert.is(n, 0);
  });

  return s;
}
