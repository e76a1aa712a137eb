/**
 * Options of the e1000e driver, checked up front: a bad value is an ERR_E1000E_OPTION naming the
 * option, the rule and a value that works.
 */
import { RING_ALIGN_DESCS } from '../../spec/e1000e/descriptors.js';
import { E1000eError } from './errors.js';

export type E1000eInterruptMode = 'poll' | 'msix' | 'intx';

export interface E1000eOptions {
  /** RX descriptors: a multiple of 8 from 8 to 4096 (RDLEN is a multiple of 128 bytes, §10.2.5). Default 512. */
  rxDescriptors?: number;
  /** TX descriptors: a multiple of 8 from 8 to 4096. Default 512. */
  txDescriptors?: number;
  /** Buffers in the RX pool (at least rxDescriptors + 1). Default 2 x rxDescriptors. */
  rxBuffers?: number;
  /** Buffers in the TX pool. Default 2 x txDescriptors. */
  txBuffers?: number;
  /** 'poll' (interrupts masked), 'msix' (RX and link causes on MSI-X vector 0) or 'intx' (INTA#). Default 'poll'. */
  interrupts?: E1000eInterruptMode;
  /** Accept every unicast and multicast frame (RCTL.UPE, RCTL.MPE). Default false. */
  promiscuous?: boolean;
  /** Bound on CTRL.RST self-clearing and on GIO master disable, ms. Default 1000. */
  resetTimeoutMs?: number;
  /** Bound on each EERD read, ms. Default 100. */
  eepromTimeoutMs?: number;
  /** Bound on STATUS.LU after CTRL.SLU, ms. Default 5000. */
  linkTimeoutMs?: number;
  /** Fail open() when the link stays down (true, default) or open with the link down (false). */
  requireLink?: boolean;
}

export function checkOptions(o: E1000eOptions): Required<E1000eOptions> {
  const ring = (name: string, v: number | undefined): number => {
    const n = v ?? 512;
    if (!Number.isInteger(n) || n < RING_ALIGN_DESCS || n > 4096 || n % RING_ALIGN_DESCS !== 0) {
      throw new E1000eError('ERR_E1000E_OPTION', `e1000e: ${name} = ${v} must be a multiple of ${RING_ALIGN_DESCS} from ${RING_ALIGN_DESCS} to 4096`, {
        fix: `RDLEN/TDLEN are multiples of 128 bytes (§10.2.5, §10.2.6); try ${name}: 512`,
      });
    }
    return n;
  };
  const positive = (name: string, v: number | undefined, dflt: number, min = 1): number => {
    const n = v ?? dflt;
    if (!Number.isInteger(n) || n < min) {
      throw new E1000eError('ERR_E1000E_OPTION', `e1000e: ${name} = ${v} must be an integer of at least ${min}`, {
        fix: `pass an integer of at least ${min}, or leave ${name} out for its default (${dflt})`,
      });
    }
    return n;
  };
  const rxDescriptors = ring('rxDescriptors', o.rxDescriptors);
  const txDescriptors = ring('txDescriptors', o.txDescriptors);
  const interrupts = o.interrupts ?? 'poll';
  if (interrupts !== 'poll' && interrupts !== 'msix' && interrupts !== 'intx') {
    throw new E1000eError('ERR_E1000E_OPTION', `e1000e: interrupts = ${String(interrupts)} must be 'poll', 'msix' or 'intx'`, {
      fix: "use 'poll' (no interrupts), 'msix' or 'intx'",
    });
  }
  return {
    rxDescriptors,
    txDescriptors,
    rxBuffers: positive('rxBuffers', o.rxBuffers, 2 * rxDescriptors, rxDescriptors + 1),
    txBuffers: positive('txBuffers', o.txBuffers, 2 * txDescriptors),
    interrupts,
    promiscuous: o.promiscuous ?? false,
    resetTimeoutMs: positive('resetTimeoutMs', o.resetTimeoutMs, 1000),
    eepromTimeoutMs: positive('eepromTimeoutMs', o.eepromTimeoutMs, 100),
    linkTimeoutMs: positive('linkTimeoutMs', o.linkTimeoutMs, 5000),
    requireLink: o.requireLink ?? true,
  };
}
