/**
 * The transmit ring: N legacy TX descriptors (§7.2.10.1) pointing at buffers of the TX pool.
 *
 * Least privilege choice: the TX descriptor window is DEVICE-READ-ONLY. The device never needs to
 * write it because completion is learnt from the TDH register (§10.2.6: "the head pointer points
 * to the next descriptor the hardware will process"; descriptors before it are done) instead of
 * from STA.DD write-back. RS is therefore never set; one 32-bit MMIO read of TDH per cleanup,
 * amortised over a batch, replaces a DD scan, and a faulty or hostile device cannot rewrite the
 * ring it fetches from. TX buffers are device-read-only too.
 *
 * Ownership: software fills descriptors at `tail` and writes TDT once per batch; the device owns
 * TDH..TDT-1. `clean` is the oldest descriptor whose buffer software has not yet taken back. At
 * most N-1 descriptors are in flight (TDH == TDT means empty).
 */
import type { DmaWindow, RegisterSpace } from '../contract/platform.js';
import { DESC_SIZE, TXD, TXD_CMD } from '../../spec/e1000e/descriptors.js';
import { REG } from '../../spec/e1000e/registers.js';
import type { PacketBatch } from '../contract/packet-batch.js';
import type { PacketPool } from '../kit/packet-pool.js';

export interface TxRingCounters {
  /** Frames handed to the device. */
  packets: number;
  bytes: number;
  /** Frames the caller offered that did not fit (the ring was full). */
  full: number;
  /** TDH reads that were not believed (outside the ring or beyond the tail). */
  badHead: number;
}

/**
 * The descriptor's third dword (bytes 8..11: LENGTH, CSO, CMD) for every frame, the length aside:
 * one descriptor per frame (EOP), the device appends the FCS (IFCS); no RS.
 */
const CMD_DWORD = ((TXD_CMD.EOP.mask | TXD_CMD.IFCS.mask) * 2 ** (8 * (TXD.CMD.offset - TXD.LENGTH.offset))) >>> 0;
/** Dword indexes in a descriptor: the buffer address (low, high), LENGTH/CSO/CMD, STA/CSS/SPECIAL. */
const ADDR_LO = TXD.BUFFER_ADDR.offset >>> 2;
const ADDR_HI = ADDR_LO + 1;
const CMD_DW = TXD.LENGTH.offset >>> 2;
const STA_DW = TXD.STA.offset >>> 2;
const DESC_DWORDS = DESC_SIZE >>> 2;
const TDH = REG.TDH.offset;
const TDT = REG.TDT.offset;

export class TxRing {
  readonly size: number;
  readonly window: DmaWindow;
  readonly pool: PacketPool;
  readonly counters: TxRingCounters = { packets: 0, bytes: 0, full: 0, badHead: 0 };
  private readonly regs: RegisterSpace;
  private readonly d32: Uint32Array;
  private readonly bufOf: Uint32Array;
  private tail = 0;
  private clean = 0;

  constructor(regs: RegisterSpace, window: DmaWindow, size: number, pool: PacketPool) {
    this.regs = regs;
    this.window = window;
    this.size = size;
    this.pool = pool;
    const b = window.bytes;
    this.d32 = new Uint32Array(b.buffer, b.byteOffset, (size * DESC_SIZE) / 4);
    this.bufOf = new Uint32Array(size);
  }

  /** Program the ring registers (§4.6.6 transmit init); TCTL is set by the caller. */
  start(): void {
    this.d32.fill(0);
    this.tail = 0;
    this.clean = 0;
    const iova = this.window.iova;
    this.regs.write32(REG.TDBAL.offset, Number(iova & 0xffffffffn));
    this.regs.write32(REG.TDBAH.offset, Number(iova >> 32n));
    this.regs.write32(REG.TDLEN.offset, this.size * DESC_SIZE);
    this.regs.write32(TDH, 0);
    this.regs.write32(TDT, 0);
  }

  /** Descriptors handed to the device and not yet cleaned. */
  get inFlight(): number {
    const d = this.tail - this.clean;
    return d < 0 ? d + this.size : d;
  }

  /** Take back the buffers of every descriptor the device has processed (up to TDH). Returns how many. */
  reclaim(): number {
    if (this.tail === this.clean) return 0;
    const head = this.regs.read32(TDH);
    const size = this.size,
      pool = this.pool,
      bufOf = this.bufOf;
    let c = this.clean;
    let n = 0;
    // A head outside the ring, or outside [clean, tail] (descriptors never handed over), is not
    // believed: freeing on its word would hand buffers out twice.
    let done = head - c;
    if (done < 0) done += size;
    if (head >= size || done > this.inFlight) {
      this.counters.badHead++;
      return 0;
    }
    while (c !== head) {
      pool.free(bufOf[c]!);
      c = c + 1 === size ? 0 : c + 1;
      n++;
    }
    this.clean = c;
    return n;
  }

  /**
   * Queue the batch's frames; returns how many were taken. Taken frames leave the batch (the rest
   * move to its front, still the caller's); their buffers return to the pool once sent. Never
   * blocks: a full ring takes fewer, or none.
   */
  send(batch: PacketBatch): number {
    const size = this.size;
    let free = this.clean - this.tail - 1;
    if (free < 0) free += size;
    if (free < batch.count) {
      this.reclaim();
      free = this.clean - this.tail - 1;
      if (free < 0) free += size;
    }
    const n = batch.count < free ? batch.count : free;
    if (n === 0) {
      if (batch.count > 0) this.counters.full += batch.count;
      return 0;
    }
    const d32 = this.d32,
      pool = this.pool,
      bufOf = this.bufOf,
      bufs = batch.buf,
      lens = batch.len;
    let t = this.tail;
    let bytes = 0;
    for (let k = 0; k < n; k++) {
      const buf = bufs[k]!;
      const len = lens[k]!;
      const iova = pool.iova(buf);
      const d = t * DESC_DWORDS;
      d32[d + ADDR_LO] = iova >>> 0;
      d32[d + ADDR_HI] = Math.floor(iova / 0x1_0000_0000);
      d32[d + CMD_DW] = (CMD_DWORD | len) >>> 0;
      d32[d + STA_DW] = 0;
      bufOf[t] = buf;
      bytes += len;
      t = t + 1 === size ? 0 : t + 1;
    }
    this.tail = t;
    this.regs.write32(TDT, t);
    this.counters.packets += n;
    this.counters.bytes += bytes;
    if (n < batch.count) this.counters.full += batch.count - n;
    batch.shift(n);
    return n;
  }
}
