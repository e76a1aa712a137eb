/**
 * Ethernet helpers the 82574L model needs: the broadcast test and the frame check sequence.
 */

/** True for ff:ff:ff:ff:ff:ff. */
export function isBroadcast(f: Uint8Array): boolean {
  return f[0] === 0xff && f[1] === 0xff && f[2] === 0xff && f[3] === 0xff && f[4] === 0xff && f[5] === 0xff;
}

const CRC_TABLE = (() => {
  const t = new Uint32Array(256);
  for (let i = 0; i < 256; i++) {
    let c = i;
    for (let k = 0; k < 8; k++) c = c & 1 ? 0xedb88320 ^ (c >>> 1) : c >>> 1;
    t[i] = c >>> 0;
  }
  return t;
})();

/** The Ethernet FCS (IEEE 802.3 §3.2.9: CRC-32, reflected, sent least significant byte first). */
export function fcs32(frame: Uint8Array, len: number, out: Uint8Array): void {
  let c = 0xffffffff;
  for (let i = 0; i < len; i++) c = CRC_TABLE[(c ^ frame[i]!) & 0xff]! ^ (c >>> 8);
  c = (c ^ 0xffffffff) >>> 0;
  out[0] = c & 0xff;
  out[1] = (c >>> 8) & 0xff;
  out[2] = (c >>> 16) & 0xff;
  out[3] = c >>> 24;
}
