/**
 * Framing: an encoder for whole frames and a streaming decoder over one reusable buffer. The
 * decoder checks what framing alone can check (magic, version, length bound) before it reads a
 * payload; types, layouts and sequence ids are the endpoints' business (every frame, even one of an
 * unknown type, consumes a sequence id, so the endpoint must see it). It never throws: problems go to
 * the sink as HypercallErrors, and after a 'kill' problem it ignores all further input.
 */
import { HypercallError } from './errors.js';
import { HC_MAGIC, HC_MAX_PAYLOAD, HDR, HEADER_SIZE, typeName } from './protocol.js';

/** The header of the frame being delivered. One object, reused for every frame. */
export interface FrameHeader {
  version: number;
  type: number;
  seq: number;
  ref: number;
  length: number;
}

export interface FrameSink {
  /** A complete frame. `payload` views the decoder's buffer from offset HEADER_SIZE: valid only during the call. */
  frame(header: FrameHeader, payload: DataView): void;
  problem(error: HypercallError): void;
}

export interface DecoderOptions {
  maxPayload?: number;
  /** The header version to accept (HC_VERSION until HELLO negotiates another). */
  version: number;
}

export class FrameDecoder {
  readonly maxPayload: number;
  version: number;
  private readonly buf: Buffer;
  private readonly view: DataView;
  private readonly header: FrameHeader = { version: 0, type: 0, seq: 0, ref: 0, length: 0 };
  /** Bytes held in `buf` for the frame being assembled. */
  private have = 0;
  private dead = false;

  constructor(
    private readonly sink: FrameSink,
    options: DecoderOptions,
  ) {
    this.maxPayload = options.maxPayload ?? HC_MAX_PAYLOAD;
    this.version = options.version;
    this.buf = Buffer.alloc(HEADER_SIZE + this.maxPayload);
    this.view = new DataView(this.buf.buffer, this.buf.byteOffset, this.buf.byteLength);
  }

  get stopped(): boolean {
    return this.dead;
  }

  /** Stop decoding for good (the endpoint decided to kill). */
  stop(): void {
    this.dead = true;
  }

  /**
   * Feed bytes as they arrive, in any chunking, from `chunk[from]`; deliver at most `maxFrames`
   * frames. Returns where it stopped: `chunk.length` once every byte is taken (or the decoder
   * died), less when `maxFrames` frames were delivered first (feed the rest later).
   */
  push(chunk: Uint8Array, from = 0, maxFrames = Infinity): number {
    let i = from;
    const n = chunk.length;
    let frames = 0;
    while (i < n && !this.dead) {
      if (frames >= maxFrames) return i;
      if (this.have < HEADER_SIZE) {
        const k = Math.min(HEADER_SIZE - this.have, n - i);
        copy(chunk, this.buf, this.have, i, i + k);
        this.have += k;
        i += k;
        if (this.have < HEADER_SIZE) return n;
        if (!this.readHeader()) return n;
      }
      const total = HEADER_SIZE + this.header.length;
      if (this.have < total) {
        const k = Math.min(total - this.have, n - i);
        copy(chunk, this.buf, this.have, i, i + k);
        this.have += k;
        i += k;
      }
      if (this.have === total) {
        this.have = 0;
        frames++;
        this.sink.frame(this.header, this.view);
      }
    }
    return n;
  }

  /** The stream ended: a partial frame is a truncation. */
  end(): void {
    if (this.dead) return;
    if (this.have > 0) {
      this.kill(new HypercallError('ERR_HC_TRUNCATED', 'kill', `the stream ended inside a frame (${this.have} bytes of it received)`));
    }
  }

  /** Validate the header in `buf`; false when the decoder died. */
  private readHeader(): boolean {
    const v = this.view;
    const h = this.header;
    const magic = v.getUint16(HDR.magic, true);
    h.version = v.getUint8(HDR.version);
    h.type = v.getUint8(HDR.type);
    h.seq = v.getUint32(HDR.seq, true);
    h.ref = v.getUint32(HDR.ref, true);
    h.length = v.getUint32(HDR.length, true);
    if (magic !== HC_MAGIC) {
      this.kill(
        new HypercallError(
          'ERR_HC_BAD_MAGIC',
          'kill',
          `bad frame magic 0x${magic.toString(16).padStart(4, '0')} (expected 0x${HC_MAGIC.toString(16)}): not a hypercall stream, or it lost its framing`,
        ),
      );
      return false;
    }
    if (h.version !== this.version) {
      this.kill(new HypercallError('ERR_HC_BAD_VERSION', 'kill', `frame version ${h.version}, but this channel speaks version ${this.version}`));
      return false;
    }
    if (h.length > this.maxPayload) {
      this.kill(
        new HypercallError(
          'ERR_HC_FRAME_TOO_LARGE',
          'kill',
          `frame ${typeName(h.type)} seq ${h.seq} declares ${h.length} payload bytes; the maximum is ${this.maxPayload}`,
        ),
      );
      return false;
    }
    return true;
  }

  private kill(error: HypercallError): void {
    this.dead = true;
    this.have = 0;
    this.sink.problem(error);
  }
}

/** Copy source[start, end) to target[at...] without allocating a view (Buffer.copy accepts any Uint8Array source). */
const copyBytes = Buffer.prototype.copy;
function copy(source: Uint8Array, target: Buffer, at: number, start: number, end: number): void {
  copyBytes.call(source, target, at, start, end);
}

/** A whole frame, header and payload; `fill` writes the payload at offset HEADER_SIZE. */
export function encodeFrame(version: number, type: number, seq: number, ref: number, length: number, fill?: (view: DataView, bytes: Buffer) => void): Buffer {
  const bytes = Buffer.alloc(HEADER_SIZE + length);
  const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
  view.setUint16(HDR.magic, HC_MAGIC, true);
  view.setUint8(HDR.version, version);
  view.setUint8(HDR.type, type);
  view.setUint32(HDR.seq, seq, true);
  view.setUint32(HDR.ref, ref, true);
  view.setUint32(HDR.length, length, true);
  fill?.(view, bytes);
  return bytes;
}
