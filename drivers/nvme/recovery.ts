/**
 * Timeout escalation and controller reset, every step bounded.
 *
 * For each command past its deadline (the completion engine calls `checkTimeouts`):
 * - I/O: reap its queue again (a lost interrupt); if CSTS says the controller is in fatal status
 *   or gone (all ones), reset at once (§9.5: it would answer no Abort); otherwise Abort it (§5.1)
 *   and wait once more, then reset the controller, which fails the command with ERR_NVME_TIMEOUT.
 * - Admin: reap again, then reset (an admin queue that does not answer cannot carry an Abort).
 *   During initialisation or a reset, an admin command that times out is abandoned at once.
 *
 * A reset (§7.3.2) abandons everything in flight, disables the controller (which deletes every
 * queue), resets the rings, and brings the controller and its I/O queues back; if that fails
 * within its bounds the controller is marked failed, and every later call fails fast.
 */
import type { Clock } from '../contract/platform.js';
import type { AdminQueue } from './admin.js';
import type { IoQueue } from './ioqueue.js';
import type { ControllerRegisters } from './bringup.js';
import type { ControllerState } from './state.js';

export interface RecoveryOptions {
  state: ControllerState;
  admin: AdminQueue;
  queues: readonly IoQueue[];
  hw: ControllerRegisters;
  clock: Clock;
  adminTimeoutMs: number;
  ioTimeoutMs: number;
  log: (message: string) => void;
  /** Bring the controller back after it was disabled and the rings reset: enable, then recreate the I/O queues. */
  restart: () => Promise<void>;
  /** The reset is over (done or failed): I/Os waiting for a slot may go on, or see the failure. */
  resumed: () => void;
}

/** Escalation stages of a busy I/O slot (QueuePair.stage). */
const WAITING = 0;
const ABORT_SENT = 1;

export class Recovery {
  /** Controller resets done after timeouts. */
  resets = 0;
  /** Abort commands sent after timeouts. */
  aborts = 0;
  private readonly o: RecoveryOptions;

  constructor(o: RecoveryOptions) {
    this.o = o;
  }

  /** Escalate every command past its deadline (see the file comment). */
  checkTimeouts(): void {
    const { state, admin, adminTimeoutMs, ioTimeoutMs, log } = this.o;
    const phase = state.phase;
    if (phase !== 'ready' && phase !== 'resetting' && phase !== 'init') return;
    const now = this.o.clock.now();
    const a = admin.qp;
    for (let s = 0; s < a.slots; s++) {
      if (!a.isBusy(s) || now - a.startedAt[s]! < adminTimeoutMs) continue;
      admin.poll();
      if (!a.isBusy(s)) continue;
      const what = admin.whatOf(s);
      if (phase !== 'ready') {
        state.abandonReason = `no completion within ${adminTimeoutMs} ms during controller ${phase === 'init' ? 'initialisation' : 'reset'}`;
        a.abandon(s);
        continue;
      }
      log(`${what}: no completion after ${adminTimeoutMs} ms; resetting the controller`);
      void this.reset(`${what} got no completion within ${adminTimeoutMs} ms`);
      return;
    }
    if (phase !== 'ready') return;
    for (const q of this.o.queues) {
      const qp = q.qp;
      for (let s = 0; s < qp.slots; s++) {
        if (!qp.isBusy(s) || now - qp.startedAt[s]! < ioTimeoutMs) continue;
        q.poll();
        if (!qp.isBusy(s)) continue;
        // A controller in fatal status, or gone, answers no Abort (§9.5): reset at once.
        const failure = this.o.hw.failure();
        if (failure !== '') {
          const why = failure === 'gone' ? 'CSTS reads all ones (the device is gone)' : 'CSTS.CFS is set (controller fatal status)';
          log(`I/O queue ${q.qid} CID ${qp.cidOf(s)}: no completion after ${ioTimeoutMs} ms and ${why}; resetting the controller without an Abort`);
          void this.reset(`an I/O on queue ${q.qid} got no completion within ${ioTimeoutMs} ms and ${why}`);
          return;
        }
        if (qp.stage[s] === WAITING) {
          qp.stage[s] = ABORT_SENT;
          qp.startedAt[s] = now;
          this.aborts++;
          const cid = qp.cidOf(s);
          log(`I/O queue ${q.qid} CID ${cid}: no completion after ${ioTimeoutMs} ms; sending Abort`);
          admin.abort(q.qid, cid).catch(() => undefined);
        } else {
          log(`I/O queue ${q.qid} CID ${qp.cidOf(s)}: still no completion ${ioTimeoutMs} ms after Abort; resetting the controller`);
          void this.reset(`an I/O on queue ${q.qid} got no completion within ${ioTimeoutMs} ms, nor after an Abort`);
          return;
        }
      }
    }
  }

  /** Abandon every command in flight; each one's handler sees STATUS_ABANDONED and rejects. */
  abandonAll(): void {
    this.o.admin.abandonAll();
    for (const q of this.o.queues) for (let s = 0; s < q.slots; s++) q.abandon(s);
  }

  /** Controller reset after a timeout (§7.3.2). */
  private async reset(reason: string): Promise<void> {
    const { state, admin, queues, hw, log } = this.o;
    if (state.phase !== 'ready') return;
    // close() may run while the reset awaits the device; it then owns the teardown.
    const closed = (): boolean => state.phase === 'closed';
    state.phase = 'resetting';
    this.resets++;
    state.abandonReason = reason;
    this.abandonAll();
    let disabled = false;
    try {
      await hw.disable('reset');
      disabled = true;
      if (closed()) return;
      admin.qp.resetRing();
      for (const q of queues) q.qp.resetRing();
      await this.o.restart();
      if (closed()) return;
      state.phase = 'ready';
      log(`controller reset done (${reason})`);
    } catch (e) {
      // A controller that never cleared CSTS.RDY may still DMA to its queues: close() must not free them.
      if (!disabled) state.disableIgnored = true;
      if (closed()) return;
      state.phase = 'failed';
      this.abandonAll();
      log(`controller reset failed: ${(e as Error).message}; the controller is marked failed`);
    }
    this.o.resumed();
  }
}
