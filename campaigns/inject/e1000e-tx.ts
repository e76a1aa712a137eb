/**
 * What the injector must know of the 82574L to corrupt work before the tail write: where the
 * legacy TX and RX rings live (TDBAL/TDBAH/TDLEN, RDBAL/RDBAH/RDLEN, 82574 §10.2.5, §10.2.6) and
 * which descriptor a tail write hands over (§7.2.10 TX: the descriptors from the old TDT up to the
 * new one; §7.1.4 RX: the device fills from RDH). It reads only the driver's own windows, as
 * nvme-sq.ts does for NVMe submission queues.
 */
import type { DmaWindow } from '../../drivers/contract/platform.js';
import { DESC_SIZE, TXD } from '../../spec/e1000e/descriptors.js';
import { REG } from '../../spec/e1000e/registers.js';

const PAGE = 4096;

/** Register offsets the tracker watches (BAR0 writes). */
export const E1000E_TAILS = Object.freeze({ TDT: REG.TDT.offset, RDT: REG.RDT.offset, RDH: REG.RDH.offset });

interface Ring {
  lo: number;
  hi: number;
  len: number;
  tail: number;
}

/** A descriptor the injector may rewrite: its window's view and byte offset. */
export interface DescriptorAt {
  readonly view: DataView;
  readonly at: number;
}

export class E1000eRings {
  /** Every window the driver allocated, in order of allocation. */
  readonly windows: DmaWindow[] = [];
  private readonly tx: Ring = { lo: 0, hi: 0, len: 0, tail: 0 };
  private readonly rx: Ring = { lo: 0, hi: 0, len: 0, tail: 0 };
  /** Buffer addresses the driver handed to the device on TX, most recent last (a stale one for `cid`). */
  private lastTxBuffer = -1;

  /** A BAR0 write the driver made: ring bases and lengths are noted. */
  noteWrite(offset: number, value: number): void {
    switch (offset) {
      case REG.TDBAL.offset:
        this.tx.lo = value >>> 0;
        return;
      case REG.TDBAH.offset:
        this.tx.hi = value >>> 0;
        return;
      case REG.TDLEN.offset:
        this.tx.len = value >>> 0;
        this.tx.tail = 0;
        return;
      case REG.RDBAL.offset:
        this.rx.lo = value >>> 0;
        return;
      case REG.RDBAH.offset:
        this.rx.hi = value >>> 0;
        return;
      case REG.RDLEN.offset:
        this.rx.len = value >>> 0;
        return;
    }
  }

  private locate(iova: number): { window: DmaWindow; offset: number } | undefined {
    for (const w of this.windows) {
      const start = Number(w.iova);
      if (iova >= start && iova < start + w.size) return { window: w, offset: iova - start };
    }
    return undefined;
  }

  private descriptor(r: Ring, index: number): DescriptorAt | undefined {
    const n = r.len / DESC_SIZE;
    if (n < 1 || index < 0 || index >= n) return undefined;
    const where = this.locate(r.lo + r.hi * 2 ** 32 + index * DESC_SIZE);
    return where ? { view: where.window.view, at: where.offset } : undefined;
  }

  /**
   * A TDT write moving the tail to `tail`: the last descriptor it hands over (the caller may
   * rewrite it before the write goes through), or undefined when it hands over none.
   */
  txSubmitted(tail: number): DescriptorAt | undefined {
    const n = this.tx.len / DESC_SIZE;
    if (n < 1 || tail >= n || tail === this.tx.tail) {
      this.tx.tail = tail;
      return undefined;
    }
    const last = (tail + n - 1) % n;
    this.tx.tail = tail;
    const d = this.descriptor(this.tx, last);
    return d;
  }

  /** Note the buffer address of the TX descriptor `d` (after any rewrite): the next `cid` firing reuses it. */
  noteTx(d: DescriptorAt): void {
    this.lastTxBuffer = Number(d.view.getBigUint64(d.at + TXD.BUFFER_ADDR.offset, true));
  }

  /** The buffer address the previous TX descriptor carried, or -1. */
  get staleTxBuffer(): number {
    return this.lastTxBuffer;
  }

  /** The RX descriptor the device fills next (at RDH), or undefined. */
  rxAt(rdh: number): DescriptorAt | undefined {
    return this.descriptor(this.rx, rdh);
  }

  /** The IOVA of the RX descriptor ring (device read-write: the rings inside the sandbox), or 0. */
  get rxRingIova(): number {
    return this.rx.lo + this.rx.hi * 2 ** 32;
  }

  /** The IOVA of the TX descriptor ring, or 0. */
  get txRingIova(): number {
    return this.tx.lo + this.tx.hi * 2 ** 32;
  }

  /** A page-aligned IOVA past every window (nothing is mapped there). */
  unmapped(): number {
    let end = 0;
    for (const w of this.windows) end = Math.max(end, Number(w.iova) + w.size);
    return Math.ceil(end / PAGE) * PAGE + 64 * PAGE;
  }

  /** A window the device may only write (`deviceWrites` true: the RX buffers) or only read (the TX ring and buffers), or undefined. */
  oneWay(deviceWrites: boolean): DmaWindow | undefined {
    return this.windows.find((x) => (deviceWrites ? x.perm.write && !x.perm.read : x.perm.read && !x.perm.write));
  }

  /** The window holding the RX descriptor ring (the device reads and writes it), or undefined. */
  rxRing(): DmaWindow | undefined {
    return this.locate(this.rxRingIova)?.window;
  }
}
