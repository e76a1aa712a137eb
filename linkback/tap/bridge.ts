/**
 * The TAP linkback: a TAP interface on the host and a NIC driver, joined frame for frame.
 *
 *   host stack -> TAP fd -> (read into a NIC TX buffer) -> queue -> NicPort.tx -> wire   (tx-pump.ts)
 *   wire -> NicPort.rx -> (write from the NIC RX buffer) -> TAP fd -> host stack         (rx-pump.ts)
 *
 * Driven by two events: the TAP fd becoming readable (the seam's poll, level-triggered) and the
 * NIC's `waitRx` (its MSI-X interrupt or its polling). Up to `batch` frames move per turn each way;
 * a drain yields to the event loop before the next, so neither direction starves the other.
 *
 * No copy and no allocation per frame: a frame read from the TAP lands in a TX buffer the NIC lent
 * (inside its DMA window), and a received frame is written to the TAP from its RX buffer.
 *
 * Back-pressure. When the NIC takes fewer frames than offered (TX ring full, a driver restarting),
 * the rest stay queued, in order, and are offered again every `retryMs`; nothing is dropped for
 * that. Only when the queue itself is full does `whenFull` decide: 'wait' (default) stops reading
 * the TAP, so frames wait in the host's queue (which drops, and counts in the interface's
 * tx_dropped, only when its own txqueuelen overflows); 'drop' keeps reading and drops, counting
 * `queueDrops`. A NIC with no TX buffer free counts as a full queue.
 *
 * This file is the state machine's actions: the states and the transitions allowed between them
 * are in state.ts, and every change of state goes through `enter`. Time comes from a BridgeClock
 * (clock.ts), so tests run the bridge on fake time.
 *
 * The bridge owns neither end: stop() detaches it (orderly: no more reads, the RX loop ends within
 * `waitMs`, queued TX buffers go back to the NIC and are counted in `stopDrops`); closing the TAP
 * and the NIC is the caller's.
 */
import { realClock, type BridgeClock, type BridgeTimer } from './clock.js';
import { BridgeCounters, type TapBridgeCounters } from './counters.js';
import { TapError } from './errors.js';
import { HoldArea } from './hold.js';
import { LinkMirror } from './link.js';
import type { NicPort } from './nic-port.js';
import { bridgeSettings, checkPort, type BridgeSettings, type TapBridgeOptions } from './options.js';
import { RX_BROKE, RxPump } from './rx-pump.js';
import { isRunning, nextState, type BridgeEvent, type BridgeState } from './state.js';
import type { FrameIo } from './tun.js';
import { TX_BROKE, TX_FAULT, TX_FULL, TxPump } from './tx-pump.js';

export { frameClass, type ClassCounters, type DirectionCounters, type TapBridgeCounters } from './counters.js';
export type { TapBridgeOptions } from './options.js';
export type { BridgeState } from './state.js';

export class TapBridge {
  readonly io: FrameIo;
  private nic: NicPort;
  private readonly settings: BridgeSettings;
  private readonly clock: BridgeClock;
  private readonly count: BridgeCounters;
  private readonly tx: TxPump;
  private readonly rx: RxPump;
  private readonly hold: HoldArea;
  private readonly link: LinkMirror;

  private current: BridgeState = 'idle';
  /** The RX loop; settled whenever the bridge is not running, failed or on its way out of running. */
  private rxLoopDone: Promise<void> = Promise.resolve();
  /** Retries of queued frames and looks at a paused TAP (`retryMs`), the end of a back-off (`waitMs`). */
  private readonly timer: BridgeTimer;
  private readonly pumpTapBound = (): void => this.pumpTap();

  constructor(io: FrameIo, port: NicPort, options: TapBridgeOptions = {}) {
    this.io = io;
    this.nic = port;
    this.settings = bridgeSettings(options);
    this.clock = options.clock ?? realClock;
    checkPort(port);
    this.count = new BridgeCounters(options.onError);
    this.tx = new TxPump(this.settings, this.count);
    this.rx = new RxPump(this.settings.batch, this.count);
    this.hold = new HoldArea(this.count);
    this.link = new LinkMirror(this.settings.mirrorLink, this.settings.waitMs, this.count);
    this.timer = this.clock.timer(() => this.onTimer());
  }

  /** The NIC port frames go to and come from now (resume and replacePort change it). */
  get port(): NicPort {
    return this.nic;
  }

  /** Frames move both ways (reading, paused or backoff). */
  get isRunning(): boolean {
    return isRunning(this.current);
  }

  /** Where the bridge is in its life (state.ts). */
  get state(): BridgeState {
    return this.current;
  }

  /** Start moving frames both ways. Does nothing on a running bridge. */
  start(): void {
    this.go('start');
  }

  /**
   * A driver restart, first half: detach from the NIC port while the TAP stays (the host keeps its
   * interface, addresses and routes, and sees a pause, not a failure). Reading the TAP pauses
   * (frames wait in the host's queue), the RX loop ends (within `waitMs`), and frames still queued
   * are copied out of the port's TX buffers into the bridge's own holding area and their buffers
   * given back if the port still answers. When this resolves the bridge holds no buffer and no view
   * of the port: the old driver may close and unmap its windows. Frames the old driver had already
   * accepted are the old device's: Ethernet is best effort, and the peers' protocols resend.
   * A bridge stopped meanwhile stays stopped (this resolves all the same).
   */
  async suspend(): Promise<void> {
    this.go('suspend');
    await this.rxLoopDone;
    if (this.current === 'suspending') this.go('rxEnded');
  }

  /**
   * A driver restart, second half: carry on with `next` (the restarted driver's port). Held frames
   * are copied into its TX buffers, in order, and offered first (a frame it has no buffer for, or
   * longer than its maxFrame, is counted in `swapDrops`); its link is mirrored afresh.
   */
  resume(next: NicPort): void {
    const to = nextState(this.current, 'resume', this.io.name);
    checkPort(next);
    this.hold.restore(this.tx, next);
    this.nic = next;
    this.count.events.portSwaps++;
    if (to !== null) this.enter(to);
  }

  /** suspend() then resume(next), for a port replaced while the old one is still open. */
  async replacePort(next: NicPort): Promise<void> {
    checkPort(next);
    await this.suspend();
    if (this.current === 'suspended') this.resume(next);
  }

  /** Stop: no more reads or writes; resolves once the RX loop has ended (within `waitMs`). Idempotent. */
  async stop(): Promise<void> {
    this.go('stop');
    await this.rxLoopDone;
    if (this.current === 'stopping') this.go('rxEnded');
  }

  counters(): TapBridgeCounters {
    return this.count.snapshot(this.tx.queued);
  }

  // ---- the state machine ----

  /** Apply `event`: refused, ignored, or a move to the state the table gives. */
  private go(event: BridgeEvent): void {
    const to = nextState(this.current, event, this.io.name);
    if (to !== null) this.enter(to);
  }

  /** Every change of state, and what it does (state.ts lists them). */
  private enter(to: BridgeState): void {
    const from = this.current;
    this.current = to;
    if (from === 'reading') this.io.unwatch();
    if (isRunning(from) && !isRunning(to)) this.timer.cancel();
    switch (to) {
      case 'reading':
        if (from === 'idle' || from === 'suspended') {
          this.link.restart(this.nic, this.io, this.clock.now());
          this.rxLoopDone = this.rxLoop(this.nic);
          if (this.tx.queued > 0) this.timer.start(this.settings.retryMs);
        }
        this.io.watch(this.pumpTapBound);
        return;
      case 'paused':
        this.timer.start(this.settings.retryMs);
        return;
      case 'backoff':
        this.timer.start(this.settings.waitMs);
        return;
      case 'failed':
        this.tx.forget();
        return;
      case 'suspended':
        this.hold.hold(this.tx, this.nic);
        return;
      case 'stopped':
        if (from === 'suspended') this.tx.discard();
        else this.tx.release(this.nic);
        return;
      default:
        // suspending, stopping: the RX loop sees the state and ends; suspend()/stop() wait for it.
        return;
    }
  }

  private onTimer(): void {
    if (this.current === 'backoff') this.go('retry');
    this.pumpTap();
  }

  // ---- TAP -> NIC ----

  /** Runs in the poll callback and the timer: nothing escapes it (TxPump.turn never throws). */
  private pumpTap(): void {
    const s = this.current;
    if (s !== 'reading' && s !== 'paused') return;
    const r = this.tx.turn(this.nic, this.io);
    if (r === TX_BROKE) return this.fail(this.tx.violation);
    if (r === TX_FAULT) return this.go('fault');
    if (r === TX_FULL) {
      if (s === 'reading') this.go('full');
      else this.timer.start(this.settings.retryMs); // still full: look again
      return;
    }
    if (s === 'paused') this.go('room');
    // Queued frames the NIC did not take are offered again.
    if (this.tx.queued > 0 && !this.timer.pending) this.timer.start(this.settings.retryMs);
  }

  // ---- NIC -> TAP ----

  private async rxLoop(port: NicPort): Promise<void> {
    const { waitMs } = this.settings;
    while (isRunning(this.current)) {
      let ready: boolean;
      try {
        ready = await port.waitRx(waitMs);
      } catch (e) {
        this.count.portError(e);
        await this.clock.sleep(waitMs);
        continue;
      }
      if (!isRunning(this.current)) break;
      this.link.poll(port, this.io, this.clock.now());
      if (!ready) continue;
      const n = this.rx.drain(port, this.io);
      if (n === RX_BROKE) {
        this.fail(this.rx.violation);
        break;
      }
      // Yield a whole event-loop turn after every drain (a port may say ready and give nothing:
      // awaiting only microtasks would starve the TAP side); after a throwing port, wait longer.
      if (n >= 0) await this.clock.nextTurn();
      else await this.clock.sleep(waitMs);
    }
  }

  /** A port broke the contract: stop moving frames (its buffers' owner is unknown) and report. */
  private fail(what: string): void {
    this.count.events.portErrors++;
    const err = new TapError('ERR_TAP_PORT', `TAP bridge ${this.io.name}: port ${this.nic.name}: ${what}; the bridge stopped`, {
      fix: 'a NicPort must take frames from the batch front and return how many it took (see linkback/tap/nic-port.ts); suspend() and resume(port) with a working port',
    });
    this.go('broke');
    this.count.report(err);
  }
}
