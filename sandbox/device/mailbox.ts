/**
 * The device process's end of the register mailbox (sandbox/abi/mailbox.ts): the container's MMIO
 * reaches the simulated device here, never through the manager. It wakes on the container's
 * eventfd, applies the request ring's entries in order to the simulated function and answers
 * reads. Everything in the ring is hostile: an unknown op, a bad space, width or offset is
 * answered with a status (never thrown), and a ring index no correct container could write is a
 * violation (the supervisor kills the container). The ring is consumed as sandbox/abi/ring.ts
 * says, at most one ring's worth per wake-up, so a flooding container cannot starve the device
 * process's event loop; the rest waits for the next turn.
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { Shared } from '../abi/shm.js';
import { RingConsumer, type RingSink } from '../abi/ring.js';
import type { Pollable } from '../abi/hybrid-poll.js';
import { IRQ_KIND_CODE, MAILBOX_RING, MailboxOp, MailboxStatus, RING_ENTRIES, SPACE_CONFIG, W } from '../abi/mailbox.js';

/** What the mailbox drives: the simulated PCI function as the device process holds it. */
export interface MailboxTarget {
  barSize(index: number): number;
  barRead32(index: number, offset: number): number;
  barWrite32(index: number, offset: number, value: number): void;
  cfgRead(offset: number, width: 1 | 2 | 4): number;
  cfgWrite(offset: number, width: 1 | 2 | 4, value: number): void;
  /** Route vectors to the container's eventfds; returns how many were routed, or throws. */
  irqEnable(kind: 'msix' | 'intx', vectors: number): number;
  irqDisable(): void;
  reset(): void;
}

export class HostMailbox implements Pollable {
  private readonly u32: Uint32Array;
  private readonly req: RingConsumer;
  private readonly reqSink: RingSink = { take: (at) => this.take(at) };
  private readonly drainLater = (): void => {
    this.scheduled = false;
    this.drain();
  };
  private poller: PollHandle | undefined;
  private closed = false;
  private scheduled = false;
  private polled = false;
  /** Entries applied, and entries refused with a status. */
  applied = 0;
  refused = 0;

  constructor(
    private readonly sys: Sys,
    shm: Shared,
    private readonly kickFd: number,
    private readonly target: MailboxTarget,
    private readonly onViolation: (reason: string) => void,
  ) {
    this.u32 = shm.u32;
    this.req = new RingConsumer(MAILBOX_RING, (reason) => {
      this.close();
      this.onViolation(reason);
    });
    this.req.bind(shm.u32, Atomics.load(this.u32, W.REQ_HEAD));
  }

  /** Serve kicks; `onKick` after each (the device process starts its hybrid poller there). */
  start(onKick?: () => void): void {
    this.poller = this.sys.poll(this.kickFd, () => {
      this.sys.eventfdRead(this.kickFd);
      this.drain();
      onKick?.();
    });
  }

  /** Stop serving; a container spinning on an answer sees HOST_GONE and gives up. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    Atomics.store(this.u32, W.HOST_GONE, 1);
  }

  /** Apply what is in the ring (also called directly by tests); returns how many entries were applied. */
  drain(): number {
    if (this.closed) return 0;
    const n = this.req.drain(this.reqSink, RING_ENTRIES);
    // A ring's worth applied and more is there: the rest on the next turn.
    if (!this.closed && !this.scheduled && this.req.available() > 0) {
      this.scheduled = true;
      setImmediate(this.drainLater);
    }
    return n;
  }

  /** One request (the ring's sink); answered requests carry the REQ_TAIL value that posted them. */
  private take(e: number): boolean {
    if (this.closed) return false;
    const u32 = this.u32,
      i = e >>> 2;
    this.apply(u32[i]!, u32[i + 1]!, u32[i + 2]!, (this.req.head + 1) >>> 0);
    return true;
  }

  /** Pollable: apply what the container posted (the device process's hybrid poller, every turn). */
  poll(): number {
    return this.drain();
  }

  /**
   * The device process polls the ring every turn (sandbox/abi/hybrid-poll.ts): while `on`, HOST_POLLED tells
   * the container to leave its kicks out.
   */
  setPolled(on: boolean): void {
    if (this.closed || this.polled === on) return;
    this.polled = on;
    this.req.setPolled(on);
  }

  private answer(seq: number, status: MailboxStatus, value: number): void {
    if (status !== MailboxStatus.OK) this.refused++;
    const u32 = this.u32;
    u32[W.RESP_VALUE] = value >>> 0;
    u32[W.RESP_STATUS] = status;
    Atomics.store(u32, W.RESP_SEQ, seq);
  }

  private apply(w0: number, offset: number, value: number, seq: number): void {
    const op = w0 & 0xff,
      width = (w0 >>> 8) & 0xff,
      space = w0 >>> 16;
    this.applied++;
    switch (op) {
      case MailboxOp.WRITE:
      case MailboxOp.READ: {
        const status = this.checkAccess(space, width, offset);
        if (status !== MailboxStatus.OK) {
          if (op === MailboxOp.READ) this.answer(seq, status, 0xffffffff);
          else this.refused++;
          return;
        }
        try {
          if (op === MailboxOp.WRITE) {
            if (space === SPACE_CONFIG) this.target.cfgWrite(offset, width as 1 | 2 | 4, value);
            else this.target.barWrite32(space, offset, value);
          } else {
            const v = space === SPACE_CONFIG ? this.target.cfgRead(offset, width as 1 | 2 | 4) : this.target.barRead32(space, offset);
            this.answer(seq, MailboxStatus.OK, v);
          }
        } catch {
          if (op === MailboxOp.READ) this.answer(seq, MailboxStatus.DEVICE, 0xffffffff);
          else this.refused++;
        }
        return;
      }
      case MailboxOp.IRQ_ENABLE: {
        const kind = offset === IRQ_KIND_CODE.msix ? 'msix' : offset === IRQ_KIND_CODE.intx ? 'intx' : undefined;
        if (kind === undefined) return this.answer(seq, MailboxStatus.BAD_ACCESS, 0);
        try {
          this.answer(seq, MailboxStatus.OK, this.target.irqEnable(kind, value));
        } catch {
          this.answer(seq, MailboxStatus.DENIED, 0);
        }
        return;
      }
      case MailboxOp.IRQ_DISABLE:
      case MailboxOp.RESET:
        try {
          if (op === MailboxOp.RESET) this.target.reset();
          else this.target.irqDisable();
          this.answer(seq, MailboxStatus.OK, 0);
        } catch {
          this.answer(seq, MailboxStatus.DEVICE, 0);
        }
        return;
      default:
        this.answer(seq, MailboxStatus.BAD_OP, 0);
    }
  }

  private checkAccess(space: number, width: number, offset: number): MailboxStatus {
    if (space === SPACE_CONFIG) {
      if ((width !== 1 && width !== 2 && width !== 4) || offset % width !== 0 || offset + width > 4096) return MailboxStatus.BAD_ACCESS;
      return MailboxStatus.OK;
    }
    if (space > 5 || width !== 4 || (offset & 3) !== 0) return MailboxStatus.BAD_ACCESS;
    const size = this.target.barSize(space);
    if (size === 0 || offset + 4 > size) return MailboxStatus.BAD_ACCESS;
    return MailboxStatus.OK;
  }
}
