/**
 * Hybrid polling on the manager's side of a sandbox's shared-memory queues (the block ring's
 * completions, and for a simulated device its register mailbox, where the driver's doorbells
 * arrive): while requests are in flight, and for an idle window after the last one, the manager
 * looks at the queues on every event-loop turn instead of sleeping until the container kicks an
 * eventfd; the queues' POLLED words tell the container to leave those kicks out. The window
 * restarts with every request posted and every entry found, so polling lasts while work flows and
 * stops `idleMs` after it stopped, also when requests stay in flight: a slow or hung container
 * costs no more than the window, then its kicks, or hang detection, take over.
 *
 * This is NAPI busy-polling or SPDK's poller in the event loop's terms: no wake-up per batch (on
 * the 2-core VM of bench/RESULTS.md a sleeping process takes ~50 us to wake, more than a request's
 * work) and no eventfd write per completion, for CPU spent looking while a client is active. After
 * the window the manager sleeps as before, so an idle sandbox costs nothing.
 *
 * Each turn goes through `setImmediate`, so sockets and timers are served between looks (libuv
 * polls them with a zero timeout while an immediate is pending). A turn that found nothing yields
 * the CPU: the manager and a polling container put on one CPU by the scheduler would otherwise each
 * spin out a time slice waiting for the other (measured: ~3k instead of ~50k IOPS over NBD).
 * Ending a polling period is the ring's rule (sandbox/abi/ring.ts, "Polling"): POLLED words to 0
 * (each queue's ring fences after clearing it), one more look; if that found work, polling goes on.
 */

/** A queue the manager can poll: the block ring client, the register mailbox. */
export interface Pollable {
  /** Take what the other side posted; returns how many entries were taken. */
  poll(): number;
  /**
   * Tell the other side whether we poll (its kicks may be left out while `on`). Clearing must be
   * followed by a full fence before the next `poll` (a RingConsumer's setPolled does it).
   */
  setPolled(on: boolean): void;
}

export interface HybridPollerOptions {
  /** How long to keep polling after the last request completed, in milliseconds (0: never poll). */
  idleMs: number;
  /** The queues to poll now (the current container's; read every turn, as containers come and go). */
  queues(): readonly Pollable[];
  clock?: () => number;
  /**
   * Called after a turn that found nothing: give the CPU away (sched_yield) so that a container
   * on the same CPU, spinning for what we have to do, gets it now rather than after a time slice.
   */
  yield?: () => void;
}

export class HybridPoller {
  private running = false;
  private stopped = false;
  private last = 0;
  /** Turns spent polling, and polling periods begun (for status and the benchmark's notes). */
  turns = 0;
  periods = 0;
  private readonly clock: () => number;
  private readonly turnBound = (): void => this.turn();

  constructor(private readonly o: HybridPollerOptions) {
    this.clock = o.clock ?? (() => performance.now());
  }

  get polling(): boolean {
    return this.running;
  }

  /** Requests were posted: poll until they complete and the idle window has passed. */
  wake(): void {
    if (this.stopped || this.o.idleMs <= 0) return;
    this.last = this.clock();
    if (this.running) return;
    this.running = true;
    this.periods++;
    for (const q of this.o.queues()) q.setPolled(true);
    setImmediate(this.turnBound);
  }

  /** Stop for good (the sandbox stops): the queues go back to kicks. */
  close(): void {
    this.stopped = true;
    if (!this.running) return;
    this.running = false;
    for (const q of this.o.queues()) q.setPolled(false);
  }

  private turn(): void {
    if (!this.running) return;
    this.turns++;
    let found = 0;
    const queues = this.o.queues();
    for (const q of queues) {
      q.setPolled(true); // a queue of a container started meanwhile
      found += q.poll();
    }
    const now = this.clock();
    if (found > 0) this.last = now;
    else this.o.yield?.();
    if (now - this.last < this.o.idleMs) {
      setImmediate(this.turnBound);
      return;
    }
    // The window passed: back to kicks, then one more look for what came without one.
    for (const q of queues) q.setPolled(false);
    found = 0;
    for (const q of queues) found += q.poll();
    if (found > 0) {
      this.last = now;
      for (const q of queues) q.setPolled(true);
      setImmediate(this.turnBound);
      return;
    }
    this.running = false;
  }
}
