/**
 * NIC -> TAP, one batch at a time: take up to `batch` received frames from the port, write each to
 * the TAP straight from its RX buffer, give the buffers back. The port's report is checked, not
 * trusted: a frame whose length or offset falls outside the port's memory is counted and skipped.
 * Allocates nothing; never throws (what went wrong is its result).
 */
import { PacketBatch } from '../../drivers/contract/packet-batch.js';
import { countFrame, ETH_HEADER, frameClass, type BridgeCounters } from './counters.js';
import type { NicPort } from './nic-port.js';
import type { FrameIo } from './tun.js';

/** The port threw (counted and reported). */
export const RX_FAULT = -1;
/** The port broke the NicPort contract (`violation` says how). */
export const RX_BROKE = -2;

export class RxPump {
  /** What the port did wrong, after RX_BROKE. */
  violation = '';
  private readonly batch: PacketBatch;
  private readonly counters: BridgeCounters;

  constructor(batch: number, counters: BridgeCounters) {
    this.batch = new PacketBatch(batch);
    this.counters = counters;
  }

  /** Move up to one batch from the NIC to the TAP; how many frames the NIC gave, or RX_FAULT / RX_BROKE. */
  drain(port: NicPort, io: FrameIo): number {
    try {
      return this.drainOrThrow(port, io);
    } catch (e) {
      this.counters.portError(e);
      return RX_FAULT;
    }
  }

  private drainOrThrow(port: NicPort, io: FrameIo): number {
    const b = this.batch;
    b.clear();
    const k = port.rx(b);
    if (!Number.isInteger(k) || k < 0 || k !== b.count) {
      this.violation = `rx() returned ${k} but the batch holds ${b.count} frames`;
      return RX_BROKE;
    }
    const bytes = port.rxBytes;
    const max = port.maxFrame;
    const c = this.counters;
    for (let i = 0; i < k; i++) {
      const len = b.len[i]!;
      const off = port.rxOffset(b.buf[i]!);
      if (len < ETH_HEADER || len > max || !(off >= 0) || off + len > bytes.length) {
        c.events.malformedFromNic++;
        continue;
      }
      if (io.write(bytes, off, len)) countFrame(c.toTap, frameClass(bytes, off, len), len);
      else c.events.tapWriteErrors++;
    }
    port.rxFree(b);
    return k;
  }
}
