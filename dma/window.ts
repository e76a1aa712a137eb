/**
 * A DMA window: memory, the IOVA the device sees it at, and what the device may do to it.
 *
 * A window can be revoked (unmapped from the IOMMU) while its memory stays allocated and its IOVA
 * stays reserved: the device then faults on it, and the CPU can still check that nothing arrived
 * (tests of "RX into a buffer whose window was revoked"). Freeing releases everything.
 */
import type { DmaPerm, DmaWindow } from '../drivers/contract/platform.js';
import type { DmaMemory } from './memory.js';

export type WindowState = 'mapped' | 'revoked' | 'freed';

export class Window implements DmaWindow {
  readonly iova: bigint;
  readonly size: number;
  readonly perm: DmaPerm;
  readonly bytes: Uint8Array;
  readonly view: DataView;
  readonly label: string;
  /** The memory behind it (shareable by fd when it came from a memfd provider). */
  readonly memory: DmaMemory;
  /** Offset of the window in `memory`. */
  readonly offset: number;
  state: WindowState = 'mapped';
  /** True when the IOVA is the physical address (IOMMU passthrough): not from the IOVA allocator. */
  identity = false;

  constructor(memory: DmaMemory, offset: number, iova: bigint, size: number, perm: DmaPerm, label: string) {
    this.memory = memory;
    this.offset = offset;
    this.iova = iova;
    this.size = size;
    this.perm = Object.freeze({ read: perm.read, write: perm.write });
    this.bytes = memory.bytes.subarray(offset, offset + size);
    this.view = new DataView(this.bytes.buffer, this.bytes.byteOffset, size);
    this.label = label;
  }

  /** The device-side address of `offset` bytes into the window. */
  iovaAt(offset: number): bigint {
    return this.iova + BigInt(offset);
  }

  toString(): string {
    const p = `${this.perm.read ? 'r' : '-'}${this.perm.write ? 'w' : '-'}`;
    return `window "${this.label}" iova 0x${this.iova.toString(16)} +0x${this.size.toString(16)} ${p} ${this.state}`;
  }
}
