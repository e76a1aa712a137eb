/**
 * The test wire's framing, both ends (test/sandbox/net/wire.ts and the device-process fixture's
 * NIC cable, test/sandbox/fixtures/device.ts): each Ethernet frame as a little-endian u16 length
 * and its bytes.
 */

export function encodeWireFrame(f: Uint8Array): Uint8Array {
  const out = new Uint8Array(2 + f.length);
  new DataView(out.buffer).setUint16(0, f.length, true);
  out.set(f, 2);
  return out;
}

/** Reads a stream of wire frames: each call to `push` hands the whole frames it completed to `frame`. */
export class WireFrameReader {
  private buf = new Uint8Array(0);
  constructor(private readonly frame: (f: Uint8Array) => void) {}

  push(chunk: Uint8Array): void {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf);
    joined.set(chunk, this.buf.length);
    let at = 0;
    while (joined.length - at >= 2) {
      const len = joined[at]! | (joined[at + 1]! << 8);
      if (joined.length - at - 2 < len) break;
      this.frame(joined.slice(at + 2, at + 2 + len));
      at += 2 + len;
    }
    this.buf = joined.slice(at);
  }
}
