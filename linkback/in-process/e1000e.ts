/**
 * The e1000e driver running in this process, as the TAP bridge's NicPort: for benchmarks and the
 * lab, where a driver runs without a sandbox. `dmabox up` never loads it: a sandboxed NIC reaches
 * the bridge through its container's packet rings (sandbox/manager/services/net.ts).
 */
import type { PacketBatch } from '../../drivers/contract/packet-batch.js';
import type { E1000e } from '../../drivers/e1000e/device.js';
import { BUFFER_SIZE } from '../../drivers/e1000e/device.js';
import { ETH } from '../../spec/e1000e/ethernet.js';
import type { NicPort } from '../tap/nic-port.js';

/** The in-process e1000e driver as a NicPort. */
export class E1000ePort implements NicPort {
  readonly name: string;
  readonly mac: Uint8Array;
  readonly maxFrame = ETH.MAX_FRAME;
  readonly bufferSize = BUFFER_SIZE;
  private readonly nic: E1000e;

  constructor(nic: E1000e) {
    this.nic = nic;
    this.name = nic.platform.name;
    this.mac = nic.mac;
  }

  linkUp(): boolean {
    return this.nic.link().up;
  }

  get txBytes(): Uint8Array {
    return this.nic.txPool.window.bytes;
  }

  txOffset(buf: number): number {
    return this.nic.txPool.offset(buf);
  }

  txAlloc(): number {
    return this.nic.txAlloc();
  }

  txFree(buf: number): void {
    this.nic.txPool.free(buf);
  }

  tx(batch: PacketBatch): number {
    return this.nic.tx(batch);
  }

  get rxBytes(): Uint8Array {
    return this.nic.rxPool.window.bytes;
  }

  rxOffset(buf: number): number {
    return this.nic.rxPool.offset(buf);
  }

  rx(batch: PacketBatch): number {
    return this.nic.rx(batch);
  }

  rxFree(batch: PacketBatch): void {
    this.nic.rxFree(batch);
  }

  waitRx(timeoutMs: number): Promise<boolean> {
    return this.nic.waitRx(timeoutMs);
  }
}
