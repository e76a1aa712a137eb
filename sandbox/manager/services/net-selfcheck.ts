/**
 * A host on the manager's side of a SandboxNicPort, for when no TAP interface can be made (no
 * root): it resolves the peer with ARP and pings it through the sandboxed NIC, as `ping` on a TAP
 * would. With the simulator's echo peer (10.0.2.2) this shows the whole path works: manager ->
 * ring -> container -> driver -> simulated NIC -> wire -> peer, and back. Control path: bounded,
 * allocates freely. Not to be run while a bridge drives the same port.
 */
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import { SandboxError } from '../errors.js';
import { arpFrame, arpReplyFrom, icmpEcho, icmpEchoTo, ipv4 } from '../../../sim/net/packets.js';
import type { SandboxNicPort } from './net.js';

export interface SelfCheckResult {
  peerMac: string;
  /** Round-trip times of the echo requests answered, ms. */
  rtts: number[];
  sent: number;
}

async function post(port: SandboxNicPort, frame: Uint8Array, deadline: number): Promise<void> {
  const batch = new PacketBatch(1);
  while (performance.now() < deadline) {
    const b = port.txAlloc();
    if (b >= 0) {
      port.txBytes.set(frame, port.txOffset(b));
      batch.push(b, frame.length);
      if (port.tx(batch) === 1) return;
      batch.clear();
      port.txFree(b);
    }
    await new Promise((r) => setTimeout(r, 5));
  }
  throw new SandboxError('ERR_SANDBOX_NET_TIMEOUT', `${port.name}: no TX slot taken in time (is the container serving?)`);
}

/** Wait (bounded) for a frame `match` accepts; frames it does not want are dropped. */
async function await1<T>(port: SandboxNicPort, match: (f: Uint8Array, len: number) => T | null, deadline: number): Promise<T | null> {
  const batch = new PacketBatch(32);
  while (performance.now() < deadline) {
    await port.waitRx(Math.max(1, Math.min(50, deadline - performance.now())));
    batch.clear();
    const k = port.rx(batch);
    let hit: T | null = null;
    for (let i = 0; i < k && hit === null; i++) {
      const off = port.rxOffset(batch.buf[i]!);
      hit = match(port.rxBytes.subarray(off, off + batch.len[i]!), batch.len[i]!);
    }
    port.rxFree(batch);
    if (hit !== null) return hit;
  }
  return null;
}

export async function pingThroughPort(port: SandboxNicPort, o: { hostIp: string; peerIp: string; count: number; timeoutMs: number }): Promise<SelfCheckResult> {
  const host = ipv4(o.hostIp),
    peer = ipv4(o.peerIp);
  const end = performance.now() + o.timeoutMs;
  await post(port, arpFrame('request', port.mac, host, new Uint8Array(6), peer), end);
  const peerMac = await await1(port, (f, len) => arpReplyFrom(f, len, peer), end);
  if (peerMac === null) {
    throw new SandboxError('ERR_SANDBOX_NET_TIMEOUT', `${port.name}: no ARP reply from ${o.peerIp} within ${o.timeoutMs} ms`, {
      fix: 'check the simulated peer (policy device.peer: echo answers for 10.0.2.2) and the sandbox events',
    });
  }
  const rtts: number[] = [];
  const id = process.pid & 0xffff;
  for (let seq = 1; seq <= o.count; seq++) {
    const payload = Uint8Array.from({ length: 56 }, (_, i) => (i + seq) & 0xff);
    const t0 = performance.now();
    await post(port, icmpEcho('request', port.mac, peerMac, host, peer, id, seq, payload), end);
    const got = await await1(
      port,
      (f, len) => {
        const e = icmpEchoTo(f, len, host, 'reply');
        return e !== null && e.id === id && e.seq === seq && e.payload.every((b, i) => b === payload[i]) ? e : null;
      },
      Math.min(end, performance.now() + 1000),
    );
    if (got !== null) rtts.push(performance.now() - t0);
  }
  return { peerMac: [...peerMac].map((b) => b.toString(16).padStart(2, '0')).join(':'), rtts, sent: o.count };
}
