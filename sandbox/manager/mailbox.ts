/**
 * The manager's end of the register mailbox (layout.ts). It wakes on the container's eventfd,
 * applies the ring's entries in order to the simulated function and answers reads. Everything in
 * the ring is hostile: an index beyond the ring, an unknown op, a bad space, width or offset is
 * answered with a status (never thrown), and a ring index that could not have come from a correct
 * container is a violation (the supervisor kills the container). A wake-up applies entries until
 * REQ_TAIL stops moving (the container leaves out its kick while it sees us behind, guest.ts), but
 * at most one ring's worth, so a flooding container cannot starve the manager's event loop; the
 * rest waits for the next turn.
 */
import type { PollHandle, Sys } from 'linux-sys';
import type { Shared } from '../abi/shm.js';
import { fence } from '../abi/fence.js';
import type { Pollable } from './hybrid-poll.js';
import { ENTRY_BYTES, IRQ_KIND_CODE, MailboxOp, MailboxStatus, RING_ENTRIES, RING_OFFSET, SPACE_CONFIG, W } from '../abi/mailbox.js';

/** What the mailbox drives: the simulated PCI function as the manager holds it. */
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
  private readonly ring: Uint32Array;
  private poller: PollHandle | undefined;
  private head: number;
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
    this.ring = new Uint32Array(shm.bytes.buffer, shm.bytes.byteOffset + RING_OFFSET, RING_ENTRIES * (ENTRY_BYTES / 4));
    this.head = Atomics.load(this.u32, W.REQ_HEAD);
  }

  start(): void {
    this.poller = this.sys.poll(this.kickFd, () => {
      this.sys.eventfdRead(this.kickFd);
      this.drain();
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
    const u32 = this.u32;
    let budget = RING_ENTRIES;
    while (!this.closed) {
      const tail = Atomics.load(u32, W.REQ_TAIL);
      const pending = (tail - this.head) >>> 0;
      if (pending === 0) return RING_ENTRIES - budget;
      if (pending > RING_ENTRIES) {
        this.close();
        this.onViolation(`register ring tail ${tail} is ${pending} entries ahead of head ${this.head} (the ring holds ${RING_ENTRIES})`);
        return RING_ENTRIES - budget;
      }
      if (budget === 0) break;
      const n = pending < budget ? pending : budget;
      budget -= n;
      for (let k = 0; k < n; k++) {
        const e = (this.head % RING_ENTRIES) * 4;
        const w0 = this.ring[e]!, offset = this.ring[e + 1]!, value = this.ring[e + 2]!;
        this.head = (this.head + 1) >>> 0;
        this.apply(w0, offset, value, this.head);
        if (this.closed) return RING_ENTRIES - budget;
      }
      // Publish, then look at REQ_TAIL again: entries posted meanwhile may have come without a kick.
      Atomics.store(u32, W.REQ_HEAD, this.head);
      fence();
    }
    // A ring's worth applied and more is there: the rest on the next turn.
    if (!this.scheduled) {
      this.scheduled = true;
      setImmediate(() => { this.scheduled = false; this.drain(); });
    }
    return RING_ENTRIES;
  }

  /** Pollable: apply what the container posted (the manager's hybrid poller, every turn). */
  poll(): number {
    return this.drain();
  }

  /**
   * The manager polls the ring every turn (sandbox/manager/hybrid-poll.ts): while `on`, HOST_POLLED tells
   * the container to leave its kicks out.
   */
  setPolled(on: boolean): void {
    if (this.closed || this.polled === on) return;
    this.polled = on;
    Atomics.store(this.u32, W.HOST_POLLED, on ? 1 : 0);
  }

  private answer(seq: number, status: MailboxStatus, value: number): void {
    if (status !== MailboxStatus.OK) this.refused++;
    const u32 = this.u32;
    u32[W.RESP_VALUE] = value >>> 0;
    u32[W.RESP_STATUS] = status;
    Atomics.store(u32, W.RESP_SEQ, seq);
  }

  private apply(w0: number, offset: number, value: number, seq: number): void {
    const op = w0 & 0xff, width = (w0 >>> 8) & 0xff, space = w0 >>> 16;
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
