/**
 * Descriptors crafted by a test, as a hostile or curious driver would write them: through the
 * spec's layout (spec/e1000e/descriptors.ts), so the tests share no magic offsets with the code.
 */
import { TXD, TXD_CMD, TXD_STA, RXD, DESC_SIZE } from '../../../spec/e1000e/descriptors.js';

export { TXD_CMD, TXD_STA };

/** Write legacy TX descriptor `i` of a ring: buffer address, length, CMD bits; CSO, STA, CSS, special 0. */
export function writeTxd(ring: DataView, i: number, iova: number | bigint, length: number, cmd: number): void {
  const at = i * DESC_SIZE;
  const a = BigInt(iova);
  ring.setUint32(at + TXD.BUFFER_ADDR.offset, Number(a & 0xffffffffn), true);
  ring.setUint32(at + TXD.BUFFER_ADDR.offset + 4, Number(a >> 32n), true);
  ring.setUint16(at + TXD.LENGTH.offset, length, true);
  ring.setUint8(at + TXD.CSO.offset, 0);
  ring.setUint8(at + TXD.CMD.offset, cmd);
  ring.setUint8(at + TXD.STA.offset, 0);
  ring.setUint8(at + TXD.CSS.offset, 0);
  ring.setUint16(at + TXD.SPECIAL.offset, 0, true);
}

/** The STA byte of TX descriptor `i`. */
export function txdSta(ring: Uint8Array, i: number): number {
  return ring[i * DESC_SIZE + TXD.STA.offset]!;
}

/** Point RX descriptor `i`'s buffer address at `iova`. */
export function aimRxd(ring: DataView, i: number, iova: bigint): void {
  const at = i * DESC_SIZE + RXD.BUFFER_ADDR.offset;
  ring.setUint32(at, Number(iova & 0xffffffffn), true);
  ring.setUint32(at + 4, Number(iova >> 32n), true);
}
