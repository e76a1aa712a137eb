/** Test helpers: an in-process byte-stream pair, and a raw peer that writes hand-made frames. */
import { Duplex } from 'node:stream';
import { FrameDecoder, encodeFrame, type FrameHeader } from '../../../sandbox/abi/hypercall/codec.js';
import { HC_VERSION, HEADER_SIZE } from '../../../sandbox/abi/hypercall/protocol.js';
import type { HypercallError } from '../../../sandbox/abi/hypercall/errors.js';

/** Write calls made on each side of a duplexPair (a corked run of writes is one `writev`, as on a socket). */
export interface WriteCounts {
  a: number;
  b: number;
}

/** Two connected Duplex streams: what one writes, the other reads (like a socketpair). */
export function duplexPair(counts: WriteCounts = { a: 0, b: 0 }): [Duplex, Duplex] {
  const make = (other: () => Duplex, side: keyof WriteCounts) =>
    new Duplex({
      read() {},
      write(chunk: Buffer, _enc, cb) {
        counts[side]++;
        other().push(Buffer.from(chunk));
        cb();
      },
      writev(chunks, cb) {
        counts[side]++;
        other().push(Buffer.concat(chunks.map((c) => c.chunk as Buffer)));
        cb();
      },
      final(cb) {
        other().push(null);
        cb();
      },
    });
  const a: Duplex = make(() => b, 'a');
  const b: Duplex = make(() => a, 'b');
  return [a, b];
}

export interface Received {
  type: number;
  seq: number;
  ref: number;
  payload: Buffer;
}

/** The far end of a pair, speaking raw frames: writes what a test makes, records what comes back. */
export class RawPeer {
  seq = 1;
  readonly received: Received[] = [];
  readonly problems: HypercallError[] = [];
  private readonly decoder = new FrameDecoder(
    {
      frame: (h: FrameHeader, v: DataView) => {
        this.received.push({ type: h.type, seq: h.seq, ref: h.ref, payload: Buffer.from(new Uint8Array(v.buffer, v.byteOffset + HEADER_SIZE, h.length)) });
      },
      problem: (e) => this.problems.push(e),
    },
    { version: HC_VERSION, maxPayload: 65536 },
  );

  constructor(readonly stream: Duplex) {
    stream.on('data', (c: Buffer) => this.decoder.push(c));
    stream.on('error', () => {});
  }

  /** Send a frame with the next sequence id (or the one given); returns the seq used. */
  send(type: number, payload: Uint8Array = new Uint8Array(0), opts: { seq?: number; ref?: number; version?: number } = {}): number {
    const seq = opts.seq ?? this.seq++;
    const f = encodeFrame(opts.version ?? HC_VERSION, type, seq, opts.ref ?? 0, payload.length);
    f.set(payload, HEADER_SIZE);
    this.stream.write(f);
    return seq;
  }

  /** Replies received for request `seq`. */
  repliesTo(seq: number): Received[] {
    return this.received.filter((r) => r.type === 64 && r.ref === seq);
  }
}

/** A payload of `size` bytes filled by `fill`. */
export function payload(size: number, fill: (v: DataView) => void = () => {}): Buffer {
  const b = Buffer.alloc(size);
  fill(new DataView(b.buffer, b.byteOffset, b.byteLength));
  return b;
}

/** Let queued stream events run. */
/** Let the endpoints run: a few event-loop turns (a channel handles at most FRAMES_PER_TURN frames a turn). */
export const tick = async (turns = 20): Promise<void> => {
  for (let i = 0; i < turns; i++) await new Promise<void>((r) => setImmediate(r));
};

export { prng } from '../../helpers/prng.js';
