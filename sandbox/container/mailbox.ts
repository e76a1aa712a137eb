/**
 * The container's end of the register mailbox (sandbox/abi/mailbox.ts): RegisterSpace and
 * ConfigSpace for a device the manager simulates. Every access is an entry of the request ring,
 * produced as sandbox/abi/ring.ts says (a kick only when the manager may be asleep); a read, an
 * interrupt set-up or a reset then spins on RESP_SEQ with Atomics.load for at most `timeoutMs`
 * (then ERR_MAILBOX_TIMEOUT). Nothing here allocates per access.
 */
import type { ConfigSpace, RegisterSpace } from '../../drivers/contract/platform.js';
import type { Sys } from 'linux-sys';
import type { Shared } from '../abi/shm.js';
import { MailboxError } from '../abi/errors.js';
import { checkFormat } from '../abi/format.js';
import { RingProducer } from '../abi/ring.js';
import { MAILBOX_FORMAT, MAILBOX_RING, MailboxOp, MailboxStatus, RING_ENTRIES, SPACE_CONFIG, W, word0 } from '../abi/mailbox.js';

const STATUS_TEXT: Record<number, string> = {
  [MailboxStatus.BAD_ACCESS]: 'refused as a bad access (space, offset, width or alignment)',
  [MailboxStatus.BAD_OP]: 'an operation the manager does not know',
  [MailboxStatus.DENIED]: 'denied by the manager',
  [MailboxStatus.DEVICE]: 'failed by the device',
};

export class GuestMailbox {
  private readonly u32: Uint32Array;
  private readonly req: RingProducer;
  private readonly timeoutMs: number;
  /** Accesses made (reads and writes), for the container's counters. */
  accesses = 0;

  /** Refuses a mailbox of another format or version (ERR_ABI_MAGIC, ERR_ABI_VERSION). */
  constructor(
    private readonly sys: Sys,
    shm: Shared,
    private readonly kickFd: number,
    options: { timeoutMs?: number } = {},
  ) {
    this.u32 = shm.u32;
    checkFormat(shm.u32, MAILBOX_FORMAT);
    this.req = new RingProducer(MAILBOX_RING);
    this.req.bind(shm.u32, Atomics.load(this.u32, W.REQ_TAIL));
    this.timeoutMs = options.timeoutMs ?? 2000;
  }

  /** Kicks sent, and left out (the manager was still taking earlier entries, or polls). */
  get kicks(): number {
    return this.req.kicks;
  }
  get kicksSaved(): number {
    return this.req.kicksSaved;
  }

  private timeout(what: string): MailboxError {
    const gone = Atomics.load(this.u32, W.HOST_GONE) === 1;
    return new MailboxError(
      'ERR_MAILBOX_TIMEOUT',
      gone ? `${what}: the manager has released the device` : `${what}: no answer from the manager within ${this.timeoutMs} ms`,
      { fix: 'the manager may be overloaded or gone; the supervisor restarts the container' },
    );
  }

  /**
   * Every 1024 looks at the manager's answer: give up past the deadline or once the manager let go,
   * else yield the CPU. The manager answers from its event loop; when the scheduler has put both
   * processes on one CPU, spinning on would only burn the time slice the manager needs to answer.
   */
  private waited(deadline: number, what: string): void {
    if (performance.now() > deadline || Atomics.load(this.u32, W.HOST_GONE) === 1) throw this.timeout(what);
    this.sys.schedYield();
  }

  /** Put one entry in the ring (waiting, bounded, while it is full) and kick the manager if it may sleep. */
  private post(w0: number, offset: number, value: number): number {
    const u32 = this.u32,
      req = this.req;
    if (req.unconsumed() >= RING_ENTRIES) {
      const deadline = performance.now() + this.timeoutMs;
      let spins = 0;
      while (req.unconsumed() >= RING_ENTRIES) {
        if ((++spins & 1023) === 0) this.waited(deadline, 'register ring full');
      }
    }
    const i = req.at(0) >>> 2;
    u32[i] = w0;
    u32[i + 1] = offset;
    u32[i + 2] = value;
    u32[i + 3] = 0;
    this.accesses++;
    if (req.post(1)) this.sys.eventfdWrite(this.kickFd, 1n);
    return req.tail;
  }

  /** Post and wait for the answer. */
  private call(w0: number, offset: number, value: number, what: string): number {
    const seq = this.post(w0, offset, value);
    const u32 = this.u32;
    if (Atomics.load(u32, W.RESP_SEQ) !== seq) {
      const deadline = performance.now() + this.timeoutMs;
      let spins = 0;
      while (Atomics.load(u32, W.RESP_SEQ) !== seq) {
        if ((++spins & 1023) === 0) this.waited(deadline, what);
      }
    }
    const status = Atomics.load(u32, W.RESP_STATUS);
    if (status !== MailboxStatus.OK) {
      throw new MailboxError('ERR_MAILBOX_ACCESS', `${what}: ${STATUS_TEXT[status] ?? `status ${status}`}`, {
        fix:
          status === MailboxStatus.DENIED ? 'ask for no more interrupt vectors than the policy grants' : "check the access against the device's register map",
      });
    }
    return Atomics.load(u32, W.RESP_VALUE);
  }

  write(space: number, width: number, offset: number, value: number): void {
    this.post(word0(MailboxOp.WRITE, width, space), offset, value >>> 0);
  }

  read(space: number, width: number, offset: number): number {
    return this.call(word0(MailboxOp.READ, width, space), offset, 0, `read${width * 8} of space ${space} at 0x${offset.toString(16)}`) >>> 0;
  }

  irqEnable(kindCode: number, vectors: number): number {
    return this.call(word0(MailboxOp.IRQ_ENABLE, 0, 0), kindCode, vectors, `enable ${vectors} interrupt vector(s)`);
  }

  irqDisable(): void {
    this.call(word0(MailboxOp.IRQ_DISABLE, 0, 0), 0, 0, 'disable interrupts');
  }

  reset(): void {
    this.call(word0(MailboxOp.RESET, 0, 0), 0, 0, 'function-level reset');
  }
}

/** A BAR through the mailbox. Offsets are checked here too, so a driver bug is reported locally. */
export class MailboxBar implements RegisterSpace {
  private readonly last32: number;
  constructor(
    private readonly mb: GuestMailbox,
    private readonly index: number,
    readonly size: number,
  ) {
    this.last32 = size - 4;
  }
  private bad(offset: number): MailboxError {
    return new MailboxError('ERR_MAILBOX_OFFSET', `BAR${this.index}: access at ${offset}: must be a 4-byte-aligned offset inside 0..${this.size - 1}`, {
      fix: 'check the register offset against the register map',
    });
  }
  read32(offset: number): number {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32) throw this.bad(offset);
    return this.mb.read(this.index, 4, offset);
  }
  write32(offset: number, value: number): void {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32) throw this.bad(offset);
    this.mb.write(this.index, 4, offset, value);
  }
  read64(offset: number): bigint {
    const lo = this.read32(offset);
    const hi = this.read32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  write64(offset: number, value: bigint): void {
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number((value >> 32n) & 0xffffffffn));
  }
}

/** PCI configuration space through the mailbox (the manager checks bounds and alignment). */
export class MailboxConfig implements ConfigSpace {
  constructor(private readonly mb: GuestMailbox) {}
  read8(offset: number): number {
    return this.mb.read(SPACE_CONFIG, 1, offset);
  }
  read16(offset: number): number {
    return this.mb.read(SPACE_CONFIG, 2, offset);
  }
  read32(offset: number): number {
    return this.mb.read(SPACE_CONFIG, 4, offset);
  }
  write16(offset: number, value: number): void {
    this.mb.write(SPACE_CONFIG, 2, offset, value & 0xffff);
  }
  write32(offset: number, value: number): void {
    this.mb.write(SPACE_CONFIG, 4, offset, value);
  }
}
