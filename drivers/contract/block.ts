/**
 * The block service's side of the driver contract: what a `kind: 'block'` driver module's `start`
 * gets (BlockServiceParams) and returns (BlockDevice).
 *
 * Block data never crosses the service's request ring: tag t of the ring owns `slotBytes` at
 * offset `t * slotBytes` of two data areas in the DMA windows, one the device may only write
 * (read data lands there) and one it may only read (write data comes from there). The driver
 * points each command's data pointers into the tag's buffer, so the device moves the data in
 * place and the driver never touches it. The areas are the service's: they are already left out
 * of `platform.dma`'s allocations.
 */
import type { DriverFault, DriverModule } from './driver.js';

export interface BlockDataAreas {
  /** Ring entries: tags are 0..entries-1. */
  readonly entries: number;
  /** Bytes per tag in each area (whole 4 KiB pages): the largest request the service posts. */
  readonly slotBytes: number;
  /** IOVA of tag 0's read buffer (device-write-only). */
  readonly read: bigint;
  /** IOVA of tag 0's write buffer (device-read-only). */
  readonly write: bigint;
}

export interface BlockServiceParams {
  readonly areas: BlockDataAreas;
}

/** A block device that moves data between the device and a tag's buffers in the data areas. */
export interface BlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  /** Read `blocks` blocks at `lba` into tag `tag`'s read buffer. */
  read(tag: number, lba: number, blocks: number): Promise<void>;
  /** Write `blocks` blocks at `lba` from tag `tag`'s write buffer; `fua` only when `fua` is offered. */
  write(tag: number, lba: number, blocks: number, fua: boolean): Promise<void>;
  /** Writes can be Force Unit Access (then the service offers FUA to its clients). */
  readonly fua?: boolean;
  flush(): Promise<void>;
  /** Deallocate `blocks` at `lba` (offered to clients when present). */
  discard?(lba: number, blocks: number): Promise<void>;
  /** Zero `blocks` at `lba`; `noHole`: keep them allocated (offered when present). */
  writeZeroes?(lba: number, blocks: number, noHole: boolean): Promise<void>;
  /** The fault a failed request stands for, if any (reported to the manager), else undefined. */
  faultOf?(error: unknown): DriverFault | undefined;
  /** One line for the manager's log: what the device is. */
  describe(): string;
  /** Stop the device (SHUTDOWN): no request is in flight when it is called. */
  close(): Promise<void>;
}

export type BlockDriver = DriverModule<'block', BlockServiceParams, BlockDevice>;
