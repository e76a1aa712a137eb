/**
 * The driver-side fault injector: a Platform around the driver's Platform (drivers/contract) that
 * counts the driver's operations and, at the points its plan draws, crashes it, hangs it, points
 * its device at a wild address, corrupts a submission before the doorbell, or fails a contract
 * call (LFI). It imports only what a driver may (the contract, spec/, the error base): it is driver
 * code, and is written so it can run inside a driver's container.
 *
 * Points: crash and hang count every doorbell write; wild-dma and corrupt-work count I/O read
 * submissions (an NVM Read, §6.9, at an SQ tail doorbell); error-return counts DMA allocations or
 * register reads. A point fires when it is at or after `first`, on the `interval`, with
 * `probability` percent, at most `times` times (Linux fault-injection's rules).
 */
import type { DmaAllocator, DmaPerm, DmaWindow, Platform, RegisterSpace } from '../../drivers/contract/platform.js';
import { NvmOpcode } from '../../spec/nvme/commands.js';
import { SQE } from '../../spec/nvme/queue.js';
import { REG } from '../../spec/nvme/registers.js';
import { Rng } from '../../common/prng.js';
import { InjectError } from './errors.js';
import { NvmeQueues } from './nvme-sq.js';
import { E1000E_TAILS, E1000eRings } from './e1000e-tx.js';
import { e1000eCorrupt } from './e1000e-corrupt.js';
import type { Firing, InjectionPlan } from './plan.js';

export type DriverState = 'running' | 'crashed' | 'hung' | 'killed';

/**
 * What a dead incarnation's sleep returns: a promise that never settles, made fresh per call. One
 * shared module-level promise would keep every reaction ever attached to it, and with them every
 * dead driver's suspended async function, its platform and the whole simulated machine behind it:
 * a worker of a 10,000-trial e1000e campaign grew by one machine (~230 MB) per 256 trials until
 * V8 ran out of heap. A fresh one is reachable only from the function awaiting it, and is collected with it.
 */
function never(): Promise<void> {
  return new Promise<void>(() => undefined);
}

/** The endless loop of a hung driver in its own process: nothing else of it runs again. */
function spin(): never {
  for (;;) {
    /* hung */
  }
}
const PAGE = 4096;

export class Injector {
  readonly firings: Firing[] = [];
  /** Eligible points seen so far, over every incarnation of the trial. */
  points = 0;
  /** Monotonic ms of the first firing, or undefined. */
  firedAt: number | undefined;
  private readonly rng: Rng;

  /** In a process of its own (a container): a hang is an endless loop that stops everything, heartbeats too. */
  readonly ownProcess: boolean;

  constructor(
    readonly plan: InjectionPlan,
    private readonly now: () => number,
    options: { process?: boolean; onFire?: (f: Firing) => void } = {},
  ) {
    this.rng = new Rng(plan.seed);
    this.ownProcess = options.process === true;
    this.onFire = options.onFire;
  }

  /** Told of each firing as it happens (in a container: logged, so the campaign outside learns what fired). */
  private readonly onFire: ((f: Firing) => void) | undefined;

  /** A point of the class's kind passed: does it fire? */
  private fire(): boolean {
    const k = this.points++;
    const p = this.plan;
    if (this.firings.length >= p.times || k < p.first || (k - p.first) % p.interval !== 0) return false;
    if (p.probability < 100 && this.rng.below(100) >= p.probability) return false;
    return true;
  }

  private record(f: Firing): void {
    this.firings.push(f);
    this.firedAt ??= this.now();
    this.onFire?.(f);
  }

  private variant(): string {
    return this.plan.variants.length ? this.rng.pick(this.plan.variants) : this.plan.fault;
  }

  /** One incarnation of the driver: its wrapped Platform and its state (`onDeath` is the exit a supervisor would see). */
  wrap(inner: Platform, onDeath: (why: string) => void): Incarnation {
    return new Incarnation(this, inner, onDeath);
  }

  /** @internal used by Incarnation */
  decide(kind: 'doorbell' | 'read-submission' | 'alloc' | 'register-read'): string | undefined {
    const f = this.plan.fault;
    const eligible =
      ((f === 'crash' || f === 'hang') && kind === 'doorbell') ||
      ((f === 'wild-dma' || f === 'corrupt-work') && kind === 'read-submission') ||
      (f === 'error-return' &&
        ((kind === 'alloc' && this.plan.variants.includes('dma-alloc')) || (kind === 'register-read' && this.plan.variants.includes('register-read'))));
    if (!eligible || !this.fire()) return undefined;
    if (f === 'error-return') return kind === 'alloc' ? 'dma-alloc' : 'register-read';
    return this.variant();
  }

  /** @internal */
  fired(f: Firing): void {
    this.record(f);
  }

  /** The plan's fault class. */
  get fault(): string {
    return this.plan.fault;
  }

  /** @internal a random draw for a firing's details */
  draw(n: number): number {
    return this.rng.below(n);
  }
}

export class Incarnation {
  state: DriverState = 'running';
  readonly platform: Platform;
  private readonly queues: NvmeQueues;
  /** The 82574L's rings, when the plan's device is an e1000e (then `queues` is unused). */
  private readonly nic: E1000eRings | undefined;
  private bar0: RegisterSpace | undefined;
  private asqLo = 0;

  constructor(
    private readonly injector: Injector,
    private readonly inner: Platform,
    private readonly onDeath: (why: string) => void,
  ) {
    this.nic = injector.plan.device === 'e1000e' ? new E1000eRings() : undefined;
    const dstrd = this.nic ? 0 : Number((inner.bar(0).read64(REG.CAP.offset) >> 32n) & 0xfn);
    this.queues = new NvmeQueues(dstrd);
    const dma: DmaAllocator = {
      pageSize: inner.dma.pageSize,
      alloc: (size: number, perm: DmaPerm, options) => {
        this.alive();
        const site = injector.decide('alloc');
        if (site) {
          injector.fired({ point: injector.points - 1, variant: site, detail: `dma.alloc(${size}) failed` });
          throw new InjectError('ERR_INJECTED_ERROR', `injected: DMA allocation of ${size} bytes failed`, {
            fix: 'a campaign injected this failure; the driver must handle it',
          });
        }
        const w = inner.dma.alloc(size, perm, options);
        (this.nic ?? this.queues).windows.push(w);
        return w;
      },
      free: (w: DmaWindow) => {
        this.alive();
        inner.dma.free(w);
      },
      available: inner.dma.available ? (perm: DmaPerm) => inner.dma.available!(perm) : undefined,
    };
    const clock = {
      now: () => inner.clock.now(),
      sleep: (ms: number) => (this.state === 'running' ? inner.clock.sleep(ms) : never()),
      idle: inner.clock.idle ? () => inner.clock.idle!() : undefined,
    };
    this.platform = {
      name: inner.name,
      config: inner.config,
      bar: (i: number) => this.bar(i),
      dma,
      irq: inner.irq,
      clock,
      reset: () => {
        this.alive();
        inner.reset();
      },
      close: () => {
        if (this.state === 'running') inner.close();
      },
    };
  }

  /** The supervisor killed this incarnation: from now on it touches nothing. */
  kill(): void {
    if (this.state === 'running' || this.state === 'hung') this.state = 'killed';
  }

  private alive(): void {
    if (this.state === 'crashed' || this.state === 'killed')
      throw new InjectError('ERR_INJECTED_KILLED', 'this driver incarnation is dead: no platform call reaches the device');
  }

  private bar(index: number): RegisterSpace {
    const regs = this.inner.bar(index);
    if (index !== 0) return regs;
    if (this.bar0) return this.bar0;
    const bar0: RegisterSpace = {
      size: regs.size,
      read32: (offset: number): number => {
        if (this.state !== 'running') return this.state === 'hung' ? 0 : 0xffffffff;
        const site = this.injector.decide('register-read');
        if (site) {
          this.injector.fired({ point: this.injector.points - 1, variant: site, detail: `read32(0x${offset.toString(16)}) answered all-ones` });
          return 0xffffffff;
        }
        return regs.read32(offset);
      },
      write32: (offset: number, value: number): void => {
        if (this.state !== 'running') return;
        this.write(regs, offset, value);
      },
      read64: (offset: number): bigint => {
        const lo = bar0.read32(offset);
        const hi = bar0.read32(offset + 4);
        return BigInt(lo) | (BigInt(hi) << 32n);
      },
      write64: (offset: number, value: bigint): void => {
        bar0.write32(offset, Number(value & 0xffffffffn));
        bar0.write32(offset + 4, Number(value >> 32n));
      },
    };
    this.bar0 = bar0;
    return bar0;
  }

  private write(regs: RegisterSpace, offset: number, value: number): void {
    if (this.nic) {
      this.writeNic(this.nic, regs, offset, value);
      return;
    }
    if (offset === REG.ASQ.offset) this.asqLo = value >>> 0;
    else if (offset === REG.ASQ.offset + 4) this.queues.adminBase(this.asqLo, value >>> 0);
    else if (offset === REG.AQA.offset) this.queues.adminEntries(value);
    const qid = this.queues.sqOf(offset);
    if (qid >= 0) {
      const inj = this.injector;
      const kind = inj.decide('doorbell');
      if (kind !== undefined) {
        const point = inj.points - 1;
        if (inj.plan.fault === 'crash') {
          this.state = 'crashed';
          inj.fired({ point, variant: 'exception', detail: `uncaught exception at the doorbell of SQ ${qid}` });
          this.onDeath('crash: uncaught exception');
          // In a container the exception ends the process. In the runner's process the incarnation
          // is reported dead instead, and from now on its platform answers like a vanished device.
          if (inj.ownProcess) throw new InjectError('ERR_INJECTED_CRASH', `injected crash at the doorbell of SQ ${qid}`);
          return;
        }
        this.state = 'hung';
        inj.fired({ point, variant: 'loop', detail: `hung before the doorbell of SQ ${qid}` });
        if (inj.ownProcess) spin();
        return;
      }
      const sqe = this.queues.submitted(qid, value & 0xffff);
      if (sqe && qid > 0 && sqe.opcode === NvmOpcode.READ) {
        const v = inj.decide('read-submission');
        if (v !== undefined) this.corrupt(sqe.view, sqe.at, v, inj.points - 1);
      }
      if (sqe) this.queues.noteCid(sqe.view, sqe.at);
    }
    regs.write32(offset, value);
  }

  /**
   * The 82574L: a tail write (TDT or RDT) is the doorbell (crash, hang); a TDT write hands over TX
   * descriptors, the last of which wild-dma (the device reads there) and corrupt-work rewrite; an
   * RDT write lets wild-dma rewrite the RX descriptor at RDH (the device writes the next frame there).
   */
  private writeNic(nic: E1000eRings, regs: RegisterSpace, offset: number, value: number): void {
    nic.noteWrite(offset, value);
    const isTx = offset === E1000E_TAILS.TDT;
    if (isTx || offset === E1000E_TAILS.RDT) {
      const inj = this.injector;
      if (inj.decide('doorbell') !== undefined) {
        const point = inj.points - 1;
        const ring = isTx ? 'TDT' : 'RDT';
        if (inj.plan.fault === 'crash') {
          this.state = 'crashed';
          inj.fired({ point, variant: 'exception', detail: `uncaught exception at the ${ring} write` });
          this.onDeath('crash: uncaught exception');
          if (inj.ownProcess) throw new InjectError('ERR_INJECTED_CRASH', `injected crash at the ${ring} write`);
          return;
        }
        this.state = 'hung';
        inj.fired({ point, variant: 'loop', detail: `hung before the ${ring} write` });
        if (inj.ownProcess) spin();
        return;
      }
      const rdh = isTx ? 0 : regs.read32(E1000E_TAILS.RDH) & 0xffff;
      const d = isTx ? nic.txSubmitted(value & 0xffff) : nic.rxAt(rdh);
      if (d) {
        const v = inj.fault === 'corrupt-work' && !isTx ? undefined : inj.decide('read-submission');
        if (v !== undefined) {
          inj.fired({ point: inj.points - 1, variant: v, ...e1000eCorrupt(nic, d, v, isTx, inj) });
          // The device may hold the descriptor's old address (§7.1.4: descriptors are prefetched);
          // the wild driver rewrites RDH with its own value, which makes the device fetch again.
          if (!isTx) regs.write32(E1000E_TAILS.RDH, rdh);
        }
        if (isTx) nic.noteTx(d);
      }
    }
    regs.write32(offset, value);
  }

  /** Corrupt the read command at `at` (its SQ's window) before its doorbell goes through. */
  private corrupt(view: DataView, at: number, variant: string, point: number): void {
    const inj = this.injector;
    const setPrp1 = (address: number) => {
      view.setBigUint64(at + SQE.PRP1.offset, BigInt(address), true);
      view.setBigUint64(at + SQE.PRP2.offset, 0n, true);
      view.setUint32(at + SQE.CDW12.offset, view.getUint32(at + SQE.CDW12.offset, true) & 0xffff0000, true); // one block: PRP1 alone covers it
    };
    let address: number | undefined;
    let detail: string;
    switch (variant) {
      case 'unmapped':
      case 'read-only':
      case 'rings':
      case 'neighbour':
      case 'canary': {
        address =
          variant === 'unmapped'
            ? (this.injector.plan.unmapped ?? this.queues.unmapped())
            : variant === 'read-only'
              ? this.queues.readOnly() || (this.injector.plan.unmapped ?? this.queues.unmapped())
              : variant === 'rings'
                ? this.queues.cqIova || (this.injector.plan.unmapped ?? this.queues.unmapped())
                : variant === 'neighbour'
                  ? this.injector.plan.neighbour
                  : this.injector.plan.canary;
        address += inj.draw(4) * PAGE;
        setPrp1(address);
        detail = `read data pointed at ${variant} 0x${address.toString(16)}`;
        break;
      }
      case 'prp': {
        const w = this.queues.windows[inj.draw(this.queues.windows.length)];
        address = w ? Number(w.iova) + inj.draw(Math.max(1, w.size / PAGE)) * PAGE : this.queues.unmapped();
        setPrp1(address);
        detail = `PRP1 replaced by 0x${address.toString(16)} (one of the driver's own windows)`;
        break;
      }
      case 'lba': {
        const lba = inj.draw(0xffffffff);
        view.setUint32(at + SQE.CDW10.offset, lba, true);
        detail = `SLBA replaced by ${lba}`;
        break;
      }
      case 'cid': {
        const stale = this.queues.swapStaleCid(view, at);
        detail = `command id replaced by the stale ${stale}`;
        break;
      }
      default: {
        // bit-flip: one bit of the data pointers, the LBA or the block count (bytes 24..51)
        const bit = inj.draw((52 - 24) * 8);
        const byte = at + 24 + (bit >>> 3);
        view.setUint8(byte, view.getUint8(byte) ^ (1 << (bit & 7)));
        detail = `bit ${bit & 7} of SQE byte ${24 + (bit >>> 3)} flipped`;
      }
    }
    inj.fired({ point, variant, address, detail });
  }
}
