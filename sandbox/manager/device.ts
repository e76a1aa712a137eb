/**
 * What a sandbox's device is to the manager, simulated (sim-device.ts) or real (vfio-device.ts):
 * the windows mapped in its IOMMU domain with the policy's device access, the block service's data
 * areas when it reserves them, the interrupt eventfds of the current container, the kind of driver
 * it needs, and quarantine.
 */
import type { Sys } from 'linux-sys';
import { EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import type { DmaPerm } from '../../drivers/contract/platform.js';
import type { IommuDmaAllocator } from '../../dma/allocator.js';
import type { Window } from '../../dma/window.js';
import type { DriverKind } from '../../drivers/contract/driver.js';
import { SandboxError } from './errors.js';
import type { Policy } from '../../policies/types.js';

/** One IOMMU mapping handed to the container (a policy window, or half of a split one). */
export interface GrantedWindow {
  readonly window: Window;
  readonly perm: DmaPerm;
  readonly label: string;
  readonly hugePages: boolean;
}

export type WindowAccess = 'split' | 'read' | 'write' | 'read-write';

/** Device access of a policy window (policies resolved before the field existed count as 'split'). */
export function windowAccess(w: Policy['windows'][number]): WindowAccess {
  return w.access ?? 'split';
}

export abstract class SandboxDevice {
  abstract readonly kind: 'sim' | 'vfio';
  abstract readonly address: string;
  /** `sim:nvme@0000:00:01.0`, `vfio:0000:00:01.0`. */
  abstract readonly description: string;
  readonly grants: GrantedWindow[] = [];
  /** Where the block ring's data areas are (grant indices; each area at offset 0 of its grant). */
  blockData: { readGrant: number; writeGrant: number; bytes: number } | undefined;
  /** Eventfds for interrupt vectors 0..n-1 (the current container's). */
  irqFds: number[] = [];
  /** What quarantine and release did, in order (`bme-off`, `flr`, `unmap`). */
  readonly quarantineLog: string[] = [];
  /**
   * Errors the device signalled on its error interrupt (on VFIO: vfio-pci's error eventfd, which
   * the kernel's AER recovery signals; on the simulator: the model's PCI function, through its
   * device process), counted whether or not anyone listens.
   */
  deviceErrors = 0;
  private errorListener: ((cause: string) => void) | undefined;

  constructor(
    readonly policy: Policy,
    protected readonly sys: Sys,
  ) {}

  abstract get irqCounts(): { msix: number; intx: number };
  /** The kind of driver the device needs (its service), or undefined when the device does not say. */
  abstract driverKind(): DriverKind | undefined;
  abstract barSizes(): number[];
  /** The fd to hand the container at slot 4 (VFIO: the device fd), or undefined. */
  abstract deviceFd(): number | undefined;
  /** Bus mastering off, interrupts off, function-level reset: before any window is reused or unmapped. */
  abstract quarantine(): void;
  /** Quarantine, unmap and free every window, give the device up. Idempotent. */
  abstract release(): void;

  /** Map the policy's windows through `dma`, each with its access ('split': two mappings). */
  protected mapWindows(dma: IommuDmaAllocator): void {
    const policy = this.policy;
    policy.windows.forEach((w, i) => {
      const label = w.label ?? `window${i}`;
      const access = windowAccess(w);
      const grant = (size: number, perm: DmaPerm, l: string): void => {
        this.grants.push({ window: dma.alloc(size, perm, { label: l }), perm, label: l, hugePages: w.hugePages });
      };
      if (access === 'split') {
        const half = Math.floor(w.size / 2 / 4096) * 4096;
        if (half < 4096)
          throw new SandboxError(
            'ERR_SANDBOX_WINDOW',
            `policy ${policy.name}: window ${label} of ${w.size} bytes is too small to split into a device-read and a device-write half`,
            { fix: 'give it at least 8KiB' },
          );
        grant(half, { read: true, write: false }, `${label}.device-reads`);
        grant(half, { read: false, write: true }, `${label}.device-writes`);
      } else {
        grant(w.size, { read: access !== 'write', write: access !== 'read' }, label);
      }
    });
  }

  /**
   * Reserve `bytes` at the start of the largest device-write-only window (read data) and of the
   * largest device-read-only window (write data): the block ring's data areas. Refuses, with the
   * fix, when the policy's windows are too small.
   */
  reserveBlockData(bytes: number): { read: Window; write: Window } {
    const pick = (read: boolean, write: boolean): number => {
      let best = -1;
      this.grants.forEach((g, i) => {
        if (g.perm.read === read && g.perm.write === write && (best < 0 || g.window.size > this.grants[best]!.window.size)) best = i;
      });
      if (best < 0 || this.grants[best]!.window.size < bytes) {
        throw new SandboxError(
          'ERR_SANDBOX_WINDOW',
          `policy ${this.policy.name}: the block ring needs ${bytes} bytes of device-${write ? 'write' : 'read'}-only window for its data buffers, and no such window is that large`,
          {
            fix: `give the policy a window of at least ${2 * bytes} bytes with access 'split' (or one of ${bytes} bytes with access '${write ? 'write' : 'read'}'), on top of what the driver's queues need`,
          },
        );
      }
      return best;
    };
    const readGrant = pick(false, true),
      writeGrant = pick(true, false);
    this.blockData = { readGrant, writeGrant, bytes };
    return { read: this.grants[readGrant]!.window, write: this.grants[writeGrant]!.window };
  }

  /** Who hears of device errors (the supervisor). One listener: a later call replaces it. */
  onDeviceError(listener: (cause: string) => void): void {
    this.errorListener = listener;
  }

  /** The device signalled an error: counted, then told to the listener. */
  protected deviceErrorRaised(cause: string): void {
    this.deviceErrors++;
    this.errorListener?.(cause);
  }

  /** Fresh interrupt eventfds for the next container (the previous ones are closed). */
  newIrqFds(count: number): number[] {
    this.closeIrqFds();
    this.irqFds = Array.from({ length: count }, () => this.sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC));
    return this.irqFds;
  }

  closeIrqFds(): void {
    for (const fd of this.irqFds) this.sys.close(fd);
    this.irqFds = [];
  }
}
