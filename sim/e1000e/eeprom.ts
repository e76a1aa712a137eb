/**
 * The 82574L model's EEPROM (the NVM map, 82574 datasheet chapter 6) and its read interface EERD
 * (§10.2.2.4): 64 words holding the station address in words 0..2 (low byte first), every other
 * word erased (FFFFh), and word 3Fh chosen so that words 00h..3Fh sum to BABAh. A read completes
 * at once: DONE is set in the same EERD write that starts it. EEC (§10.2.2.3) reads EEPROM present
 * and auto-read done, as after the device has loaded its configuration.
 */
import { REG, NVM } from '../../spec/e1000e/registers.js';
import { getField, setField } from '../../spec/field.js';
import type { RegisterDef } from '../regs.js';
import type { E1000eCore } from './core.js';

/** Words this EEPROM holds (the checksummed part of the NVM map). */
export const EEPROM_WORDS = NVM.CHECKSUM + 1;

const { EERD, EEC } = REG;
const EERD_I = EERD.offset >>> 2;
const EEC_VALUE = (EEC.EE_PRES.mask | EEC.AUTO_RD.mask) >>> 0;

export class Eeprom {
  readonly words = new Uint16Array(EEPROM_WORDS);

  /** An EEPROM holding `mac` (6 bytes, checked by the caller). */
  constructor(mac: Uint8Array) {
    const w = this.words;
    w[NVM.MAC0] = mac[0]! | (mac[1]! << 8);
    w[NVM.MAC1] = mac[2]! | (mac[3]! << 8);
    w[NVM.MAC2] = mac[4]! | (mac[5]! << 8);
    for (let i = NVM.MAC2 + 1; i < NVM.CHECKSUM; i++) w[i] = 0xffff;
    let sum = 0;
    for (let i = 0; i < NVM.CHECKSUM; i++) sum = (sum + w[i]!) & 0xffff;
    w[NVM.CHECKSUM] = (NVM.CHECKSUM_SUM - sum) & 0xffff;
  }

  /** Word `addr`; FFFFh beyond the words this EEPROM holds. */
  read(addr: number): number {
    return addr < EEPROM_WORDS ? this.words[addr]! : 0xffff;
  }

  /** EEC and EERD as register-table rows. */
  registers(core: E1000eCore): RegisterDef[] {
    const r = core.regs;
    return [
      core.register('EEC', () => EEC_VALUE),
      core.register(
        'EERD',
        () => r[EERD_I]!,
        (v) => {
          if (v & EERD.START.mask) {
            const addr = getField(v, EERD.ADDR);
            const data = core.plan === null ? this.read(addr) : core.plan.eeprom(addr, this.read(addr));
            // A fault plan's "no-done": the read never completes (DONE stays clear).
            r[EERD_I] = data < 0 ? setField(0, EERD.ADDR, addr) : setField(setField(EERD.DONE.mask, EERD.ADDR, addr), EERD.DATA, data);
          } else {
            r[EERD_I] = (v & ~EERD.DONE.mask) >>> 0;
          }
        },
      ),
    ];
  }
}
