/**
 * The 82574L model's receive address filter (82574 §7.1, receive filtering, and the filter registers of §10.2.5):
 * 16 exact receive addresses (RAL/RAH with Address Valid), the 4096-bit multicast table (MTA,
 * indexed by 12 destination address bits that RCTL.MO selects), and RCTL's promiscuous and
 * broadcast bits.
 */
import { REG, MTA_DWORDS, RAR_ENTRIES, mtaOffset, ralOffset } from '../../spec/e1000e/registers.js';
import { getField } from '../../spec/field.js';
import type { RegisterRange } from '../regs.js';

const { RCTL, RAH } = REG;
const MTA_I = REG.MTA.offset >>> 2;
const RAL_I = REG.RAL.offset >>> 2;
const RAH_I = REG.RAH.offset >>> 2;
const AV = RAH.AV.mask;
const RAH_ADDR = RAH.RAH.mask;
const UPE = RCTL.UPE.mask,
  MPE = RCTL.MPE.mask,
  BAM = RCTL.BAM.mask;

/** RAL/RAH and MTA as register ranges over the register file: plain storage. */
export function filterRanges(regs: Uint32Array): RegisterRange[] {
  const storage = (start: number, end: number, name: string): RegisterRange => ({
    start,
    end,
    name,
    read: (offset) => regs[offset >>> 2]!,
    write: (offset, v) => {
      regs[offset >>> 2] = v;
    },
  });
  return [storage(mtaOffset(0), mtaOffset(MTA_DWORDS), 'MTA'), storage(ralOffset(0), ralOffset(RAR_ENTRIES), 'RAL/RAH')];
}

/** Destination filter: unicast exact match or UPE, multicast hash or MPE, broadcast BAM (or MPE). */
export function accepts(regs: Uint32Array, f: Uint8Array, rctl: number, mcast: boolean, bcast: boolean): boolean {
  if (bcast) return (rctl & (BAM | MPE)) !== 0;
  if (mcast) {
    if (rctl & MPE) return true;
    // MTA: 12 bits of the destination address select one of 4096 bits; RCTL.MO picks which.
    const mo = getField(rctl, RCTL.MO);
    const hash = ((f[4]! >>> (4 - mo)) | (f[5]! << (4 + mo))) & 0xfff;
    return (regs[MTA_I + (hash >>> 5)]! & (1 << (hash & 31))) !== 0;
  }
  if (rctl & UPE) return true;
  const lo = (f[0]! | (f[1]! << 8) | (f[2]! << 16) | (f[3]! << 24)) >>> 0;
  const hi = f[4]! | (f[5]! << 8);
  for (let i = 0; i < RAR_ENTRIES; i++) {
    const rah = regs[RAH_I + 2 * i]!;
    if (rah & AV && regs[RAL_I + 2 * i] === lo && (rah & RAH_ADDR) === hi) return true;
  }
  return false;
}
