/**
 * The Platform a driver sees inside a container (drivers/platform.ts), built only from what the
 * manager handed over: register access through the simulated-BAR mailbox (the device model lives in
 * the manager), DMA windows the manager mapped (sub-allocated by permission, dma.ts), and
 * interrupt vectors as inherited eventfds the manager's simulated machine signals.
 */
import type { Clock, ConfigSpace, Interrupts, IrqKind, IrqVector, Platform, RegisterSpace } from '../../drivers/contract/platform.js';
import type { PollHandle, Sys } from 'linux-sys';
import { ContainerError } from './errors.js';
import { GuestMailbox, MailboxBar, MailboxConfig } from './mailbox.js';
import { IRQ_KIND_CODE } from '../abi/mailbox.js';
import { containerClock } from './clock.js';
import { GrantAllocator } from './dma.js';

class FdVector implements IrqVector {
  readonly handlers: (() => void)[] = [];
  constructor(readonly index: number) {}
  onFire(handler: () => void): void {
    this.handlers.push(handler);
  }
}

/** Who routes the device's vectors to the inherited eventfds: the manager (mailbox) or VFIO (SET_IRQS). */
export interface IrqRouter {
  /** Route vectors 0..n-1 of `kind` to fds[0..n-1]; returns how many were routed. */
  route(kind: 'msix' | 'intx', n: number): number;
  unroute(): void;
}

/** Interrupts on eventfds the manager created and handed over (a confined process cannot create them). */
export class EventfdInterrupts implements Interrupts {
  private pollers: PollHandle[] = [];
  constructor(
    private readonly sys: Sys,
    private readonly router: IrqRouter,
    private readonly counts: { msix: number; intx: number },
    /** Inherited eventfds, vector i on fds[i]. */
    private readonly fds: readonly number[],
  ) {}

  count(kind: IrqKind): number {
    if (kind === 'msix') return Math.min(this.counts.msix, this.fds.length);
    if (kind === 'intx') return this.fds.length > 0 ? this.counts.intx : 0;
    return 0;
  }

  enable(kind: IrqKind, n: number): IrqVector[] {
    const max = this.count(kind);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new ContainerError('ERR_CONTAINER_IRQ', `cannot enable ${n} ${kind} vector(s): the sandbox was given ${max}`, {
        fix: `ask for 1..${max}, or give the container more vectors in the policy (driver.queues)`,
      });
    }
    if (kind === 'msi') throw new ContainerError('ERR_CONTAINER_IRQ', 'MSI is not offered in a sandbox', { fix: "use 'msix'" });
    this.disable();
    const granted = this.router.route(kind, n);
    if (granted !== n) throw new ContainerError('ERR_CONTAINER_IRQ', `the manager routed ${granted} of ${n} ${kind} vectors`);
    const vectors: FdVector[] = [];
    for (let i = 0; i < n; i++) {
      const v = new FdVector(i),
        fd = this.fds[i]!;
      this.sys.eventfdRead(fd); // drop anything left from an earlier routing
      this.pollers.push(
        this.sys.poll(fd, () => {
          if (this.sys.eventfdRead(fd) === 0n) return;
          const hs = v.handlers;
          for (let k = 0; k < hs.length; k++) hs[k]!();
        }),
      );
      vectors.push(v);
    }
    return vectors;
  }

  disable(): void {
    if (this.pollers.length === 0) return;
    for (const p of this.pollers) p.close();
    this.pollers = [];
    this.router.unroute();
  }
}

export interface ContainerPlatformOptions {
  name: string;
  sys: Sys;
  mailbox: GuestMailbox;
  /** Size of each BAR (0: none), indices 0..5. */
  bars: readonly number[];
  irqCounts: { msix: number; intx: number };
  irqFds: readonly number[];
  dma: GrantAllocator;
}

export class ContainerPlatform implements Platform {
  readonly name: string;
  readonly config: ConfigSpace;
  readonly dma: GrantAllocator;
  readonly irq: EventfdInterrupts;
  readonly clock: Clock;
  private readonly mb: GuestMailbox;
  private readonly barSizes: readonly number[];
  private readonly bars: (RegisterSpace | undefined)[] = [];
  private closed = false;

  constructor(o: ContainerPlatformOptions) {
    this.name = o.name;
    this.clock = containerClock(o.sys);
    this.mb = o.mailbox;
    this.config = new MailboxConfig(o.mailbox);
    this.dma = o.dma;
    const mb = o.mailbox;
    this.irq = new EventfdInterrupts(
      o.sys,
      { route: (kind, n) => mb.irqEnable(IRQ_KIND_CODE[kind], n), unroute: () => mb.irqDisable() },
      o.irqCounts,
      o.irqFds,
    );
    this.barSizes = o.bars;
  }

  bar(index: number): RegisterSpace {
    const size = Number.isInteger(index) && index >= 0 && index <= 5 ? (this.barSizes[index] ?? 0) : 0;
    if (size === 0) throw new ContainerError('ERR_CONTAINER_BAR', `${this.name}: BAR ${index} is not a memory BAR of this device`);
    let b = this.bars[index];
    if (!b) this.bars[index] = b = new MailboxBar(this.mb, index, size);
    return b;
  }

  reset(): void {
    this.mb.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    try {
      this.irq.disable();
    } catch {
      /* the manager may be gone: it quarantines the device anyway */
    }
  }
}
