/**
 * The block ring: block I/O between the manager (`SandboxBlockClient`,
 * sandbox/manager/services/block.ts) and the driver in a container (`BlockServer`,
 * sandbox/container/services/block.ts), in one shared memfd with two eventfds (requests posted,
 * completions posted). README.md, "The block ring", is its document; this file is its numbers.
 *
 * Header (u32 words):
 *
 * | word | name | writer | meaning |
 * |---|---|---|---|
 * | 0 | MAGIC | manager | `0x6b6c6264` (the bytes "dblk") |
 * | 1 | ENTRIES | manager | N: tags 0..N-1, N SQ and N CQ entries |
 * | 2 | SLOT_BYTES | manager | data buffer bytes per tag |
 * | 3 | BLOCK_SIZE | container | the device's logical block size, set before READY |
 * | 4, 5 | BLOCKS_LO, BLOCKS_HI | container | the device's size in blocks |
 * | 6 | SQ_TAIL | manager | requests posted (ring.ts TAIL) |
 * | 7 | SQ_HEAD | container | requests taken (HEAD) |
 * | 8 | CQ_TAIL | container | completions posted |
 * | 9 | CQ_HEAD | manager | completions taken |
 * | 10 | SQ_POLLED | container | 1 while it looks at SQ_TAIL every turn (POLLED) |
 * | 11 | CQ_POLLED | manager | 1 while it looks at CQ_TAIL every turn |
 * | 12 | CAPS | container | what the device does besides READ, WRITE and FLUSH (`BlockCap`), set before READY |
 * | 13 | VERSION | manager | `BLOCK_VERSION` |
 *
 * SQ entry (32 bytes at 64 + 32 i): `u32 tag, u32 gen, u32 op, u32 blocks, u32 lbaLo, u32 lbaHi,
 * u32 flags, 0`. CQ entry (16 bytes after the SQ): `u32 tag, u32 gen, u32 status, 0`. Both rings
 * follow ring.ts (kicks, polling, violations). Data lives in the DMA windows, not here.
 */
import { AbiError } from './errors.js';
import type { SharedFormat } from './format.js';
import type { RingLayout } from './ring.js';

export const BLOCK_MAGIC = 0x6b6c6264;
/**
 * Bump on any change of this layout or of its rings' protocol: a container refuses a ring of
 * another version. Version 1 is the first with a VERSION word (before it, word 13 was 0).
 */
export const BLOCK_VERSION = 1;
export const B = {
  MAGIC: 0,
  ENTRIES: 1,
  SLOT_BYTES: 2,
  BLOCK_SIZE: 3,
  BLOCKS_LO: 4,
  BLOCKS_HI: 5,
  SQ_TAIL: 6,
  SQ_HEAD: 7,
  CQ_TAIL: 8,
  CQ_HEAD: 9,
  SQ_POLLED: 10,
  CQ_POLLED: 11,
  CAPS: 12,
  VERSION: 13,
} as const;
export const BLOCK_FORMAT: SharedFormat = { name: 'block ring', magic: BLOCK_MAGIC, version: BLOCK_VERSION, magicWord: B.MAGIC, versionWord: B.VERSION };
export const SQ_OFFSET = 64;
export const SQE_BYTES = 32;
export const CQE_BYTES = 16;

export const enum BlockOp {
  READ = 1,
  WRITE = 2,
  FLUSH = 3,
  /** Deallocate the blocks (NVMe Dataset Management, AD; NBD_CMD_TRIM). */
  DISCARD = 4,
  /** Zero the blocks, deallocating them unless NO_HOLE (NVMe Write Zeroes; NBD_CMD_WRITE_ZEROES). */
  WRITE_ZEROES = 5,
}

/** CAPS bits. */
export const enum BlockCap {
  DISCARD = 1,
  WRITE_ZEROES = 2,
  /** WRITE honours BlockFlag.FUA (NVMe: the FUA bit of Write, §6.15). */
  FUA = 4,
}
export const BLOCK_CAPS_KNOWN = 7;

/** SQ entry flags. */
export const enum BlockFlag {
  /** WRITE_ZEROES: the zeroed blocks must stay allocated. */
  NO_HOLE = 1,
  /** WRITE: durable when completed (Force Unit Access), offered in CAPS. */
  FUA = 2,
}

export const enum BlockStatus {
  OK = 0,
  /** A malformed request (op, tag, length). */
  BAD_REQUEST = 1,
  /** Outside the device. */
  RANGE = 2,
  /** The device reported an error. */
  IO_ERROR = 3,
}

export interface RingGeometry {
  entries: number;
  slotBytes: number;
}

export function cqOffset(g: RingGeometry): number {
  return SQ_OFFSET + g.entries * SQE_BYTES;
}

/** The request ring: the manager produces, the container consumes. */
export function sqLayout(g: RingGeometry): RingLayout {
  return { name: 'request ring', tail: B.SQ_TAIL, head: B.SQ_HEAD, polled: B.SQ_POLLED, offset: SQ_OFFSET, entries: g.entries, entryBytes: SQE_BYTES };
}

/** The completion ring: the container produces, the manager consumes. */
export function cqLayout(g: RingGeometry): RingLayout {
  return { name: 'completion ring', tail: B.CQ_TAIL, head: B.CQ_HEAD, polled: B.CQ_POLLED, offset: cqOffset(g), entries: g.entries, entryBytes: CQE_BYTES };
}

/** Bytes of the ring memfd (header, SQ and CQ), page-rounded. */
export function ringBytes(g: RingGeometry): number {
  return Math.ceil((cqOffset(g) + g.entries * CQE_BYTES) / 4096) * 4096;
}

/** Bytes of each data area (one per direction). */
export function dataAreaBytes(g: RingGeometry): number {
  return g.entries * g.slotBytes;
}

/** Where the data areas are: the manager's views (client) or the device's addresses (server). */
export interface DataAreas<T> {
  /** Device-write-only: READ data lands here. */
  read: T;
  /** Device-read-only: WRITE data is taken from here. */
  write: T;
}

/** A geometry a ring can have (ERR_ABI_GEOMETRY otherwise); `bytes`: also that it fits that much memory. */
export function checkGeometry(g: RingGeometry, bytes?: number): void {
  if (!Number.isInteger(g.entries) || g.entries < 1 || g.entries > 1024)
    throw new AbiError('ERR_ABI_GEOMETRY', `block ring entries ${g.entries}: expected 1 to 1024`);
  if (!Number.isInteger(g.slotBytes) || g.slotBytes < 4096 || g.slotBytes > 1 << 21 || g.slotBytes % 4096 !== 0) {
    throw new AbiError('ERR_ABI_GEOMETRY', `block ring slot size ${g.slotBytes}: expected a multiple of 4096 from 4 KiB to 2 MiB`);
  }
  if (bytes !== undefined && bytes < ringBytes(g)) {
    throw new AbiError('ERR_ABI_GEOMETRY', `block ring of ${g.entries} entries: needs ${ringBytes(g)} bytes of shared memory, has ${bytes}`, {
      fix: 'the manager sizes the ring memfd from the same geometry: the two come from different builds',
    });
  }
}
