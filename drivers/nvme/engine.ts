/**
 * The completion engine: makes sure completions are reaped and timeouts checked while anything is
 * in flight. In polling mode it runs on the event loop (setImmediate) while commands are out,
 * reaping every queue, giving the CPU away when a pass found nothing (Clock.idle), and scanning
 * for timeouts every few milliseconds. In MSI-X mode the vectors reap (the admin CQ and any I/O
 * queue without a vector of its own on vector 0), and a slow timer only scans for timeouts.
 */
import type { Clock } from '../contract/platform.js';
import type { AdminQueue } from './admin.js';
import type { IoQueue } from './ioqueue.js';
import type { IoDispatcher } from './dispatch.js';
import type { Recovery } from './recovery.js';
import type { ControllerState } from './state.js';

/** Milliseconds between timeout scans in polling mode. */
const SCAN_EVERY_MS = 5;

/** The MSI-X vector of I/O queue `qid` given `vectors` vectors: its own when there are enough, else the admin queue's (0). */
export function vectorOf(qid: number, vectors: number): number {
  return qid < vectors ? qid : 0;
}

export interface EngineOptions {
  interrupts: 'poll' | 'msix';
  /** MSI-X vectors in use (0 when polling). */
  vectors: number;
  clock: Clock;
  state: ControllerState;
  admin: AdminQueue;
  queues: readonly IoQueue[];
  dispatch: IoDispatcher;
  recovery: Recovery;
  adminTimeoutMs: number;
  ioTimeoutMs: number;
}

export class CompletionEngine {
  private readonly o: EngineOptions;
  private scheduled = false;
  private timer: ReturnType<typeof setTimeout> | undefined;
  private lastScan = 0;
  private readonly tick = (): void => this.run();
  private readonly scan = (): void => {
    this.timer = undefined;
    this.o.recovery.checkTimeouts();
    if (this.busy()) this.kick();
  };

  constructor(o: EngineOptions) {
    this.o = o;
  }

  /** Something was submitted: make sure it will be reaped and its timeout checked. */
  kick(): void {
    if (this.o.interrupts === 'poll') {
      if (!this.scheduled) {
        this.scheduled = true;
        setImmediate(this.tick);
      }
    } else if (this.timer === undefined) {
      this.timer = setTimeout(this.scan, Math.max(5, Math.min(this.o.adminTimeoutMs, this.o.ioTimeoutMs) / 4));
    }
  }

  /** Vector 0: the admin CQ, and the I/O queues sharing it. */
  onAdminVector(): void {
    const o = this.o;
    o.admin.poll();
    for (const q of o.queues) if (vectorOf(q.qid, o.vectors) === 0) q.poll();
    o.dispatch.wake();
  }

  /** An I/O queue's own vector. */
  onIoVector(q: IoQueue): void {
    q.poll();
    this.o.dispatch.wake();
  }

  /** Stop the timeout timer (close). */
  stop(): void {
    if (this.timer !== undefined) clearTimeout(this.timer);
    this.timer = undefined;
  }

  private busy(): boolean {
    if (this.o.admin.qp.inFlight > 0) return true;
    for (const q of this.o.queues) if (q.qp.inFlight > 0) return true;
    return false;
  }

  /** Polling mode: reap every queue, check timeouts now and then, and go again while busy. */
  private run(): void {
    const o = this.o;
    this.scheduled = false;
    if (o.state.phase === 'closed') return;
    let reaped = o.admin.poll();
    for (const q of o.queues) reaped += q.poll();
    // Nothing yet: give the CPU to whoever completes our commands, if it waits for one (Clock.idle).
    if (reaped === 0) o.clock.idle?.();
    o.dispatch.wake();
    const now = o.clock.now();
    if (now - this.lastScan >= SCAN_EVERY_MS) {
      this.lastScan = now;
      o.recovery.checkTimeouts();
    }
    if (this.busy() || o.dispatch.waiting) this.kick();
  }
}
