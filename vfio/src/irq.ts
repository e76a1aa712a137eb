/**
 * Interrupt vectors delivered to eventfds (VFIO_DEVICE_SET_IRQS with DATA_EVENTFD|ACTION_TRIGGER).
 * Each vector owns one non-blocking eventfd; the kernel adds 1 to its counter per interrupt. A
 * handler runs in Node's event loop when the counter becomes non-zero (koffi.node.poll through the
 * seam); several interrupts between two wake-ups coalesce into one call.
 */
import { VfioCode, VfioError } from './errors.js';
import { EFD_CLOEXEC, EFD_NONBLOCK, type PollHandle, type Sys } from 'linux-sys';

export type IrqKind = 'msix' | 'msi' | 'intx';

export class EventfdVector {
  /** The vector number within its IRQ index (MSI-X entry n). */
  readonly index: number;
  readonly fd: number;
  private readonly sys: Sys;
  private readonly handlers: Array<(count: bigint) => void> = [];
  private poller: PollHandle | undefined;
  private closed = false;

  private constructor(sys: Sys, index: number, fd: number) {
    this.sys = sys;
    this.index = index;
    this.fd = fd;
  }

  /** A fresh non-blocking, close-on-exec eventfd for vector `index`. */
  static create(sys: Sys, index: number): EventfdVector {
    return new EventfdVector(sys, index, sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
  }

  /** Call `handler` each time the vector fires (coalesced); the argument is how many interrupts the counter held. */
  onFire(handler: (count: bigint) => void): void {
    this.assertOpen();
    this.handlers.push(handler);
    if (!this.poller) {
      this.poller = this.sys.poll(this.fd, () => {
        const n = this.sys.eventfdRead(this.fd);
        if (n === 0n) return;
        // No copy per interrupt: a handler that removes itself (wait's one-shot) shifts the
        // next one into its slot, so step back onto it.
        const hs = this.handlers;
        for (let i = 0; i < hs.length; i++) {
          const h = hs[i]!;
          h(n);
          if (hs[i] !== h) i--;
        }
      });
    }
  }

  /** Stop calling `handler`. */
  off(handler: (count: bigint) => void): void {
    const i = this.handlers.indexOf(handler);
    if (i >= 0) this.handlers.splice(i, 1);
  }

  /**
   * Read and reset the counter without waiting: 0n if the vector has not fired (for polled
   * drivers). Once onFire/wait has been used, the poller consumes the counter: count there.
   */
  take(): bigint {
    this.assertOpen();
    return this.sys.eventfdRead(this.fd);
  }

  /** Resolve with the interrupt count at the next firing; reject with ERR_VFIO_IRQ_TIMEOUT after `timeoutMs`. */
  wait(timeoutMs: number): Promise<bigint> {
    this.assertOpen();
    return new Promise((resolve, reject) => {
      const handler = (n: bigint): void => {
        clearTimeout(timer);
        this.off(handler);
        resolve(n);
      };
      const timer = setTimeout(() => {
        this.off(handler);
        reject(new VfioError(VfioCode.IRQ_TIMEOUT, `vector ${this.index} did not fire within ${timeoutMs} ms`, { op: 'irq wait' }));
      }, timeoutMs);
      this.onFire(handler);
    });
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Stop polling and close the eventfd. Detach it from the device first (Device.disableInterrupts does). Idempotent. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.poller?.close();
    this.handlers.length = 0;
    this.sys.close(this.fd);
  }

  private assertOpen(): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, `interrupt vector ${this.index} is closed`, { op: 'irq' });
  }
}
