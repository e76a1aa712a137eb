/**
 * I/O dispatch: how one I/O command gets onto an I/O queue and back. It picks the queue with the
 * most free slots, takes a slot (or waits for one while every queue is full or a reset is under
 * way), lets the caller write the command into it, batches the SQ doorbells (one ring per queue
 * per microtask), wakes the completion engine, and settles the command's Promise from its
 * completion.
 *
 * `NamespaceHost` is all a Namespace sees of its controller: the transfer limits, and "run this
 * command". The controller keeps the queues, the state and the engine to itself.
 */
import type { IoQueue, SlotHandler } from './ioqueue.js';
import { STATUS_ABANDONED, STATUS_TIMED_OUT } from './queue.js';
import { NvmeStatusError } from './errors.js';
import type { ControllerState } from './state.js';

/** Write one command into the acquired `slot` of `q`, with `done` as its completion handler. */
export type PostCommand = (q: IoQueue, slot: number, done: SlotHandler) => void;
/** On success, take a read's data out of the slot buffer (it is reused once this returns). */
export type TakeData = (q: IoQueue, slot: number) => void;
/** Describe the command for an error message (called only when one is needed). */
export type Describe = () => string;

/** What a namespace needs from its controller, and nothing more. */
export interface NamespaceHost {
  /** Largest transfer per command through a slot buffer (MDTS and the slot buffer size). */
  readonly maxTransferBytes: number;
  /** Largest transfer per command over the caller's own memory (MDTS, §5.15.2.2). */
  readonly mdtsBytes: number;
  /**
   * Run one I/O command: `post` writes it into a free slot of an I/O queue (at once when a slot is
   * free, after waiting while every queue is full or the controller resets), and on success
   * `take` reads the data out of the slot. Rejects with NvmeStatusError on a non-zero status,
   * NvmeTimeoutError when the command timed out (aborted, or abandoned by a reset), and
   * NvmeControllerError when the controller is closed or failed.
   */
  execute(what: Describe, post: PostCommand, take?: TakeData): Promise<void>;
  /** As `execute`, but resolves with the 15-bit status (0 = success) instead of rejecting on one. */
  executeForStatus(what: Describe, post: PostCommand): Promise<number>;
}

type Settle = (status: number) => void;
type Reject = (e: unknown) => void;

export class IoDispatcher implements NamespaceHost {
  maxTransferBytes = 0;
  mdtsBytes = 0;
  private readonly state: ControllerState;
  private readonly queues: readonly IoQueue[];
  private readonly kick: () => void;
  /** I/Os waiting for a free slot, oldest first. */
  private readonly slotWaiters: (() => void)[] = [];
  private ringScheduled = false;
  private readonly ringAll = (): void => {
    this.ringScheduled = false;
    for (const q of this.queues) q.ring();
  };

  constructor(state: ControllerState, queues: readonly IoQueue[], kick: () => void) {
    this.state = state;
    this.queues = queues;
    this.kick = kick;
  }

  execute(what: Describe, post: PostCommand, take?: TakeData): Promise<void> {
    return new Promise<void>((resolve, reject) => {
      const settle: Settle = (status) => (status === 0 ? resolve() : reject(new NvmeStatusError(what(), status)));
      this.start(what, post, take, settle, reject);
    });
  }

  executeForStatus(what: Describe, post: PostCommand): Promise<number> {
    return new Promise<number>((resolve, reject) => this.start(what, post, undefined, resolve, reject));
  }

  /** The I/O queue with the most free slots, or undefined when all are full or the controller is not ready. */
  pickQueue(): IoQueue | undefined {
    if (!this.state.ready) return undefined;
    let best: IoQueue | undefined;
    let free = 0;
    for (const q of this.queues) {
      const f = q.qp.available;
      if (f > free) {
        free = f;
        best = q;
      }
    }
    return best;
  }

  /** After a submit: schedule the SQ doorbells (one ring per queue per microtask batch) and the engine. */
  track(): void {
    if (!this.ringScheduled) {
      this.ringScheduled = true;
      queueMicrotask(this.ringAll);
    }
    this.kick();
  }

  /** Whether I/Os wait for a slot (the engine keeps running while they do). */
  get waiting(): boolean {
    return this.slotWaiters.length > 0;
  }

  /** Wake waiting I/Os while slots are free (after completions). */
  wake(): void {
    while (this.slotWaiters.length && this.pickQueue()) this.slotWaiters.shift()!();
  }

  /** Wake every waiting I/O (a reset ended, or the controller closed): each proceeds or sees why it cannot. */
  wakeAll(): void {
    for (const w of this.slotWaiters.splice(0)) w();
  }

  private start(what: Describe, post: PostCommand, take: TakeData | undefined, settle: Settle, reject: Reject): void {
    const q = this.pickQueue();
    const slot = q ? q.acquire() : -1;
    if (q !== undefined && slot >= 0) this.post(q, slot, what, post, take, settle, reject);
    else void this.startWhenFree(what, post, take, settle, reject);
  }

  private async startWhenFree(what: Describe, post: PostCommand, take: TakeData | undefined, settle: Settle, reject: Reject): Promise<void> {
    try {
      for (;;) {
        if (!this.state.usable) throw this.state.unusable(what());
        const q = this.pickQueue();
        const slot = q ? q.acquire() : -1;
        if (q !== undefined && slot >= 0) return this.post(q, slot, what, post, take, settle, reject);
        await new Promise<void>((r) => {
          this.slotWaiters.push(r);
          this.kick();
        });
      }
    } catch (e) {
      reject(e);
    }
  }

  private post(q: IoQueue, slot: number, what: Describe, post: PostCommand, take: TakeData | undefined, settle: Settle, reject: Reject): void {
    const state = this.state;
    const done: SlotHandler = (s, status) => {
      if (status === STATUS_ABANDONED) return reject(state.abandoned(what()));
      if (status === STATUS_TIMED_OUT) return reject(state.aborted(what()));
      if (status === 0 && take !== undefined) {
        try {
          take(q, s);
        } catch (e) {
          return reject(e);
        }
      }
      settle(status);
    };
    try {
      post(q, slot, done);
    } catch (e) {
      q.release(slot);
      return reject(e);
    }
    this.track();
  }
}
