/**
 * The receive ring: N legacy RX descriptors (§7.1.4) in a window the device may read and write
 * (it writes back length, status and errors), each pointing at a buffer of the RX pool, whose
 * window the device may only write.
 *
 * Ownership (§7.1.8): descriptors from RDH up to RDT-1 belong to the device; software gives
 * descriptors back by moving RDT. `next` is the next descriptor software looks at; after a harvest
 * RDT is set to the last descriptor harvested, so one slot always stays between tail and head
 * (RDH == RDT means "no descriptors", never "all").
 *
 * Hot path: status, length and the refill are typed-array accesses at computed offsets; one RDT
 * write per batch; nothing allocated.
 */
import type { DmaWindow, RegisterSpace } from '../contract/platform.js';
import { DESC_SIZE, RXD, RXD_STATUS, RXD_ERRORS_FRAME } from '../../spec/e1000e/descriptors.js';
import { REG } from '../../spec/e1000e/registers.js';
import type { PacketBatch } from '../contract/packet-batch.js';
import type { PacketPool } from '../kit/packet-pool.js';
import { E1000eError } from './errors.js';

// Hot-path constants, copied once from the spec.
const STATUS_AT = RXD.STATUS.offset;
const ERRORS_AT = RXD.ERRORS.offset;
/** LENGTH as an index into a Uint16Array view of a descriptor. */
const LENGTH_U16 = RXD.LENGTH.offset >>> 1;
const DD = RXD_STATUS.DD.mask;
const EOP = RXD_STATUS.EOP.mask;
const RDT = REG.RDT.offset;
/** Dword indexes in a descriptor: the buffer address (low, high), then the write-back half. */
const ADDR_LO = RXD.BUFFER_ADDR.offset >>> 2;
const ADDR_HI = ADDR_LO + 1;
const WB_LO = RXD.LENGTH.offset >>> 2;
const WB_HI = RXD.STATUS.offset >>> 2;
const DESC_DWORDS = DESC_SIZE >>> 2;

export interface RxRingCounters {
  /** Frames handed to the caller. */
  packets: number;
  bytes: number;
  /** Descriptors written back with ERRORS set (CE, SE, SEQ, CXE, RXE: the simulator reports blocked DMA as RXE) or an impossible length. */
  errors: number;
  /** Frames that spanned several descriptors (longer than one buffer): dropped. */
  fragmented: number;
  /** Harvests that stopped because the pool had no buffer to refill the ring with. */
  poolEmpty: number;
}

export class RxRing {
  readonly size: number;
  readonly window: DmaWindow;
  readonly pool: PacketPool;
  readonly counters: RxRingCounters = { packets: 0, bytes: 0, errors: 0, fragmented: 0, poolEmpty: 0 };
  private readonly regs: RegisterSpace;
  private readonly d8: Uint8Array;
  private readonly d16: Uint16Array;
  private readonly d32: Uint32Array;
  /** Pool buffer index behind each descriptor. */
  private readonly bufOf: Uint32Array;
  private readonly bufferSize: number;
  private next = 0;
  /** Inside a frame that spans descriptors: drop until its EOP. */
  private dropping = false;

  constructor(regs: RegisterSpace, window: DmaWindow, size: number, pool: PacketPool) {
    this.regs = regs;
    this.window = window;
    this.size = size;
    this.pool = pool;
    const b = window.bytes;
    this.d8 = b;
    this.d16 = new Uint16Array(b.buffer, b.byteOffset, (size * DESC_SIZE) / 2);
    this.d32 = new Uint32Array(b.buffer, b.byteOffset, (size * DESC_SIZE) / 4);
    this.bufOf = new Uint32Array(size);
    this.bufferSize = pool.bufferSize;
  }

  /** Fill every descriptor with a buffer and hand the ring to the device (§4.6.5 receive init). */
  start(): void {
    for (let i = 0; i < this.size; i++) {
      const buf = this.pool.alloc();
      if (buf < 0) {
        throw new E1000eError(
          'ERR_E1000E_POOL',
          `rx ring: the pool ran out of buffers after ${i} of the ring's ${this.size} descriptors (it has ${this.pool.count} buffers)`,
          {
            fix: 'give the RX pool at least one buffer more than the ring has descriptors (option rxBuffers)',
          },
        );
      }
      this.bufOf[i] = buf;
      this.arm(i, buf);
    }
    this.next = 0;
    this.dropping = false;
    const iova = this.window.iova;
    this.regs.write32(REG.RDBAL.offset, Number(iova & 0xffffffffn));
    this.regs.write32(REG.RDBAH.offset, Number(iova >> 32n));
    this.regs.write32(REG.RDLEN.offset, this.size * DESC_SIZE);
    this.regs.write32(REG.RDH.offset, 0);
    this.regs.write32(RDT, this.size - 1);
  }

  /** Buffer address in, write-back half cleared (DD = 0). */
  private arm(i: number, buf: number): void {
    const iova = this.pool.iova(buf);
    const d = i * DESC_DWORDS;
    this.d32[d + ADDR_LO] = iova >>> 0;
    this.d32[d + ADDR_HI] = Math.floor(iova / 0x1_0000_0000);
    this.d32[d + WB_LO] = 0;
    this.d32[d + WB_HI] = 0;
  }

  /** True when the next descriptor has been written back (a frame is waiting). */
  ready(): boolean {
    return (this.d8[this.next * DESC_SIZE + STATUS_AT]! & DD) !== 0;
  }

  /**
   * Take up to `batch.capacity - batch.count` received frames into `batch` (appended), refilling
   * each descriptor with a fresh pool buffer. The caller owns the returned buffers and gives them
   * back with `pool.free` (E1000e.rxFree). Returns how many were added.
   */
  harvest(batch: PacketBatch): number {
    const d8 = this.d8,
      d16 = this.d16,
      pool = this.pool,
      size = this.size;
    let i = this.next;
    let taken = 0;
    let seen = 0;
    const room = batch.capacity - batch.count;
    // At most size - 1 descriptors per harvest: the one software holds back (RDT, behind `next`)
    // is never looked at in the harvest that would reach it (a device may have set DD there).
    while (taken < room && seen < size - 1) {
      const base = i * DESC_SIZE;
      const status = d8[base + STATUS_AT]!;
      if ((status & DD) === 0) break;
      const errors = d8[base + ERRORS_AT]!;
      const buf = this.bufOf[i]!;
      if ((status & EOP) === 0 || this.dropping) {
        // A frame longer than one buffer (LPE is off, so only a misconfigured peer sends one): dropped whole.
        if (!this.dropping) this.counters.fragmented++;
        this.dropping = (status & EOP) === 0;
        this.arm(i, buf);
      } else if ((errors & RXD_ERRORS_FRAME) !== 0 || (d16[(base >>> 1) + LENGTH_U16]! - 1) >>> 0 >= this.bufferSize) {
        // A flagged frame, or a length of 0 or beyond the buffer (a device that lies must not make
        // the caller read a neighbour's buffer): recycled and counted.
        this.counters.errors++;
        this.arm(i, buf);
      } else {
        const fresh = pool.alloc();
        if (fresh < 0) {
          this.counters.poolEmpty++;
          break;
        }
        const len = d16[(base >>> 1) + LENGTH_U16]!;
        batch.buf[batch.count] = buf;
        batch.len[batch.count] = len;
        batch.count++;
        this.bufOf[i] = fresh;
        this.arm(i, fresh);
        this.counters.packets++;
        this.counters.bytes += len;
        taken++;
      }
      seen++;
      i = i + 1 === size ? 0 : i + 1;
    }
    if (seen > 0) {
      // The held-back descriptor goes to the device with this RDT write: clear its write-back half
      // first, so a DD the device wrote there while it was not its own is never taken for a frame.
      const held = this.next === 0 ? size - 1 : this.next - 1;
      this.arm(held, this.bufOf[held]!);
      this.next = i;
      // Give the harvested descriptors back: RDT = the last one harvested.
      this.regs.write32(RDT, i === 0 ? size - 1 : i - 1);
    }
    return taken;
  }
}
