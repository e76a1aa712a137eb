/**
 * wild-dma and corrupt-work on the 82574L: rewrite a legacy descriptor (82574 §7.1.4 RX, §7.2.10.1
 * TX) the driver is handing to its device, before the tail write goes through.
 *
 * wild-dma: the descriptor's buffer address is replaced. On a TX descriptor the device then
 * *reads* there (a frame's data); on the RX descriptor at RDH it *writes* the next received frame
 * there. Targets: `unmapped` (past every window), `read-only` (a window the device may not use in
 * that direction: the RX buffers for a TX read, the TX buffers for an RX write), `rings` (the
 * driver's own RX descriptor ring, which the device may read and write), `neighbour` (another
 * sandbox's window, by its physical address), `canary` (a page outside every window).
 *
 * corrupt-work (TX only), the NVMe mutations' analogues: `bit-flip` a bit of the address, length,
 * CSO or CMD bytes; `prp` the buffer address replaced by a page of one of the driver's own
 * windows; `lba` the length replaced (0, or up to 16 KiB: beyond the 2 KiB buffer); `cid` the
 * buffer address of the previous TX descriptor again (a stale buffer).
 */
import { TXD } from '../../spec/e1000e/descriptors.js';
import type { DescriptorAt, E1000eRings } from './e1000e-tx.js';

const PAGE = 4096;
/** The offsets of the address, length, CSO and CMD bytes of a legacy descriptor: bit-flip's range. */
const FLIP_BYTES = TXD.CMD.offset + 1;

export interface Draws {
  readonly plan: { readonly canary: number; readonly neighbour: number };
  draw(n: number): number;
}

export function e1000eCorrupt(nic: E1000eRings, d: DescriptorAt, variant: string, isTx: boolean, inj: Draws): { address?: number; detail: string } {
  const { view, at } = d;
  const setAddress = (a: number) => view.setBigUint64(at + TXD.BUFFER_ADDR.offset, BigInt(a), true);
  const dir = isTx ? 'TX read' : 'RX write';
  switch (variant) {
    case 'unmapped':
    case 'read-only':
    case 'rings':
    case 'neighbour':
    case 'canary': {
      // Inside the sandbox's own windows the address stays in the window; outside, any of 4 pages.
      const inWindow = variant === 'read-only' ? nic.oneWay(isTx) : variant === 'rings' ? nic.rxRing() : undefined;
      let address: number;
      if (inWindow) address = Number(inWindow.iova) + inj.draw(Math.max(1, Math.floor(inWindow.size / PAGE))) * PAGE;
      else {
        address = variant === 'neighbour' ? inj.plan.neighbour : variant === 'canary' ? inj.plan.canary : nic.unmapped();
        address += inj.draw(4) * PAGE;
      }
      setAddress(address);
      return { address, detail: `${dir} buffer pointed at ${variant} 0x${address.toString(16)}` };
    }
    case 'prp': {
      const w = nic.windows[inj.draw(nic.windows.length)];
      const address = w ? Number(w.iova) + inj.draw(Math.max(1, w.size / PAGE)) * PAGE : nic.unmapped();
      setAddress(address);
      return { address, detail: `TX buffer address replaced by 0x${address.toString(16)} (one of the driver's own windows)` };
    }
    case 'lba': {
      const len = inj.draw(2) === 0 ? 0 : 1 + inj.draw(16384);
      view.setUint16(at + TXD.LENGTH.offset, len, true);
      return { detail: `TX length replaced by ${len}` };
    }
    case 'cid': {
      const stale = nic.staleTxBuffer;
      if (stale >= 0) setAddress(stale);
      return {
        address: stale >= 0 ? stale : undefined,
        detail: `TX buffer address replaced by the previous descriptor's 0x${Math.max(0, stale).toString(16)}`,
      };
    }
    default: {
      const bit = inj.draw(FLIP_BYTES * 8);
      const byte = at + (bit >>> 3);
      view.setUint8(byte, view.getUint8(byte) ^ (1 << (bit & 7)));
      return { detail: `bit ${bit & 7} of TX descriptor byte ${bit >>> 3} flipped` };
    }
  }
}
