/** Shared helpers of the packet-ring tests: a small simulated e1000e policy, frames through a SandboxNicPort. */
import { parsePolicies } from '../../../policies/index.js';
import type { Policy } from '../../../policies/types.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';
import type { SandboxNicPort } from '../../../sandbox/manager/services/net.js';

export function nicPolicy(name: string, opts: { peer?: 'echo' | 'none'; mac?: string; interrupts?: 'polling' | 'msix'; extra?: string } = {}): Policy {
  const yaml = `
version: 1
name: ${name}
device: { sim: e1000e, peer: ${opts.peer ?? 'echo'}, mac: '${opts.mac ?? '52:54:00:12:34:56'}' }
driver: { name: e1000e, depth: 64, interrupts: ${opts.interrupts ?? 'polling'} }
windows:
  - { size: 64KiB, access: read-write, label: rx-descriptors }
  - { size: 1MiB, label: buffers }
restart: { maxRestarts: 3, window: 60s, backoff: { initial: 50ms, max: 1s } }
${opts.extra ?? ''}
`;
  return parsePolicies(yaml, 'test.yaml').policies[0]!.policy;
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms));

/** Offer `frame` to the port as the bridge would (a slot, then tx); waits (bounded) for a free slot. */
export async function sendFrame(port: SandboxNicPort, frame: Uint8Array, deadlineMs = 10_000): Promise<void> {
  const end = Date.now() + deadlineMs;
  const batch = new PacketBatch(1);
  for (;;) {
    const b = port.txAlloc();
    if (b >= 0) {
      port.txBytes.set(frame, port.txOffset(b));
      batch.push(b, frame.length);
      if (port.tx(batch) === 1) return;
      port.txFree(b);
      batch.clear();
    } else {
      // TX slots come back as the container copies frames out: reaped on rx()
      port.rx(new PacketBatch(1));
    }
    if (Date.now() > end) throw new Error(`no TX slot taken within ${deadlineMs} ms (attached: ${port.isAttached})`);
    await sleep(1);
  }
}

/** Take frames from the port (copies) until `pred` says stop or `ms` passes. */
export async function receive(port: SandboxNicPort, into: Uint8Array[], want: number, ms = 10_000): Promise<void> {
  const end = Date.now() + ms;
  const batch = new PacketBatch(32);
  while (into.length < want) {
    if (Date.now() > end) throw new Error(`received ${into.length} of ${want} frames within ${ms} ms`);
    await port.waitRx(50);
    batch.clear();
    const k = port.rx(batch);
    for (let i = 0; i < k; i++) {
      const off = port.rxOffset(batch.buf[i]!);
      into.push(port.rxBytes.slice(off, off + batch.len[i]!));
    }
    port.rxFree(batch);
  }
}

/** A test frame: dst, src, ethertype 0x88b5 (local experimental), then seq (u32) and a pattern. */
export function testFrame(dst: Uint8Array, src: Uint8Array, seq: number, len: number): Uint8Array {
  const f = new Uint8Array(len);
  f.set(dst, 0);
  f.set(src, 6);
  f[12] = 0x88;
  f[13] = 0xb5;
  new DataView(f.buffer).setUint32(14, seq);
  for (let i = 18; i < len; i++) f[i] = (seq * 7 + i * 13) & 0xff;
  return f;
}

/** The seq of a testFrame, and whether its pattern is intact (`len` as sent; the NIC may pad to 60). */
export function checkFrame(f: Uint8Array, len: number): { seq: number; intact: boolean } {
  const seq = new DataView(f.buffer, f.byteOffset).getUint32(14);
  let intact = f.length >= len && f[12] === 0x88 && f[13] === 0xb5;
  for (let i = 18; intact && i < len; i++) if (f[i] !== ((seq * 7 + i * 13) & 0xff)) intact = false;
  return { seq, intact };
}
