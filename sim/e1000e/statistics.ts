/**
 * The 82574L model's statistics block (0x04000..0x040FF, 82574 §10.2 statistics): read-only
 * counters, cleared when read; a 32-bit counter sticks at its maximum; the high dword of a 64-bit
 * octet pair clears the pair when read. The engines count with `count` and `count64`, by dword
 * index (the `I` table below), allocating nothing.
 */
import { REG, STAT, STAT64, STAT_FIRST, STAT_LAST } from '../../spec/e1000e/registers.js';
import type { RegisterRange } from '../regs.js';

/** Dword index of each statistics register the engines count, for their hot paths. */
export const I = Object.freeze({
  RXERRC: STAT.RXERRC.offset >>> 2,
  MPC: STAT.MPC.offset >>> 2,
  GPRC: STAT.GPRC.offset >>> 2,
  BPRC: STAT.BPRC.offset >>> 2,
  MPRC: STAT.MPRC.offset >>> 2,
  GPTC: STAT.GPTC.offset >>> 2,
  GORCL: STAT.GORCL.offset >>> 2,
  GOTCL: STAT.GOTCL.offset >>> 2,
  RNBC: STAT.RNBC.offset >>> 2,
  ROC: STAT.ROC.offset >>> 2,
  TORL: STAT.TORL.offset >>> 2,
  TOTL: STAT.TOTL.offset >>> 2,
  TPR: STAT.TPR.offset >>> 2,
  TPT: STAT.TPT.offset >>> 2,
  MPTC: STAT.MPTC.offset >>> 2,
  BPTC: STAT.BPTC.offset >>> 2,
});

/** The high halves of the 64-bit pairs (GORCH, GOTCH, TORH, TOTH), by dword index. */
const HIGH = new Set<number>(STAT64.map(([, hi]) => REG[hi].offset >>> 2));

export class Statistics {
  private readonly regs: Uint32Array;

  constructor(regs: Uint32Array) {
    this.regs = regs;
  }

  /** The block as a register range: reads clear, writes are ignored (the counters are read-only). */
  range(): RegisterRange {
    return { start: STAT_FIRST, end: STAT_LAST + 4, name: 'statistics', read: (offset) => this.read(offset) };
  }

  private read(offset: number): number {
    const r = this.regs;
    const i = offset >>> 2;
    const v = r[i]!;
    r[i] = 0;
    if (HIGH.has(i)) r[i - 1] = 0;
    return v;
  }

  /** Add `n` to the 32-bit counter at dword `i`, sticking at the maximum. */
  count(i: number, n = 1): void {
    const r = this.regs;
    const v = r[i]! + n;
    r[i] = v > 0xffffffff ? 0xffffffff : v;
  }

  /** Add `n` to the 64-bit counter whose low dword is at `lo` (the high one follows it). */
  count64(lo: number, n: number): void {
    const r = this.regs;
    const v = r[lo]! + n;
    if (v > 0xffffffff) {
      r[lo] = v - 0x1_0000_0000;
      r[lo + 1] = (r[lo + 1]! + 1) >>> 0;
    } else {
      r[lo] = v;
    }
  }
}
