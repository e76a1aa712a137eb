/**
 * The NIC's link mirrored to the TAP's carrier (TUNSETCARRIER): an unplugged cable shows as
 * NO-CARRIER on the host, which then stops sending. Looked at when the bridge starts or resumes and
 * then at most once per `waitMs` from the RX loop (which wakes at least that often).
 */
import type { BridgeCounters } from './counters.js';
import type { NicPort } from './nic-port.js';
import type { FrameIo } from './tun.js';

/** What the TAP's carrier was last set to; 'unknown' before the first setting and after a port change. */
type Carrier = 'unknown' | 'up' | 'down';

export class LinkMirror {
  private carrier: Carrier = 'unknown';
  private nextCheck = 0;
  private readonly enabled: boolean;
  private readonly interval: number;
  private readonly counters: BridgeCounters;

  constructor(enabled: boolean, intervalMs: number, counters: BridgeCounters) {
    this.enabled = enabled;
    this.interval = intervalMs;
    this.counters = counters;
  }

  /** A new port (start, resume): its link is set on the TAP whatever the last one's was, and not counted as a change. */
  restart(port: NicPort, io: FrameIo, now: number): void {
    this.carrier = 'unknown';
    this.check(port, io, now);
  }

  /** From the RX loop: look again if `waitMs` have passed since the last look. */
  poll(port: NicPort, io: FrameIo, now: number): void {
    if (now >= this.nextCheck) this.check(port, io, now);
  }

  private check(port: NicPort, io: FrameIo, now: number): void {
    this.nextCheck = now + this.interval;
    if (!this.enabled || io.setCarrier === undefined) return;
    let up: boolean;
    try {
      up = port.linkUp();
    } catch (e) {
      this.counters.portError(e);
      return;
    }
    const next: Carrier = up ? 'up' : 'down';
    if (next === this.carrier) return;
    try {
      io.setCarrier(up);
    } catch (e) {
      this.counters.events.tapWriteErrors++;
      this.counters.report(e);
      return;
    }
    if (this.carrier !== 'unknown') this.counters.events.linkChanges++;
    this.carrier = next;
  }
}
