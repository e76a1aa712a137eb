/**
 * The device's statistics registers, accumulated since open. They clear when read (82574 §10.2,
 * statistics), so the driver reads every one it reports at once and adds it to its totals; the
 * 64-bit octet counters are read low dword first, then high (reading the high dword clears the pair).
 */
import type { RegisterSpace } from '../contract/platform.js';
import { REG, STAT32, STAT64 } from '../../spec/e1000e/registers.js';

/** A 64-bit counter by its name without the L/H suffix. */
export type Stat64Name = 'GORC' | 'GOTC' | 'TOR' | 'TOT';
/** Device counters by datasheet mnemonic. */
export type DeviceStats = Record<(typeof STAT32)[number] | Stat64Name, number>;

const SINGLE = STAT32.map((name) => ({ name, at: REG[name].offset }));
const PAIRS = STAT64.map(([lo, hi]) => ({ name: lo.slice(0, -1) as Stat64Name, lo: REG[lo].offset, hi: REG[hi].offset }));

export class StatTotals {
  private readonly regs: RegisterSpace;
  private readonly totals = {} as DeviceStats;

  constructor(regs: RegisterSpace) {
    this.regs = regs;
    for (const s of SINGLE) this.totals[s.name] = 0;
    for (const p of PAIRS) this.totals[p.name] = 0;
  }

  /** Read (and so clear) every counter; add what was read to the totals when `keep` (not at open: counting starts at zero). */
  collect(keep: boolean): void {
    const r = this.regs,
      t = this.totals;
    for (const s of SINGLE) {
      const v = r.read32(s.at);
      if (keep) t[s.name] += v;
    }
    for (const p of PAIRS) {
      const lo = r.read32(p.lo);
      const hi = r.read32(p.hi);
      if (keep) t[p.name] += hi * 0x1_0000_0000 + lo;
    }
  }

  /** A copy of the totals. */
  snapshot(): DeviceStats {
    return { ...this.totals };
  }
}
