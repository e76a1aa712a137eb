/**
 * The device of a simulated sandbox, held by the manager: a SimMachine with one simulated NVMe
 * controller, window memory from memfds (so the container maps the very bytes the simulated
 * device reads and writes), the windows mapped in the device's IOMMU domain with the policy's
 * device access, and the interrupt eventfds the container polls. It is the `MailboxTarget` the
 * container's register accesses are applied to, and it quarantines the device between containers.
 */
import { EFD_CLOEXEC, EFD_NONBLOCK, type Sys } from 'vfio-bindings';
import type { DmaPerm } from '../drivers/platform.js';
import { MemfdMemoryProvider } from '../dma/memfd.js';
import type { Window } from '../dma/window.js';
import { SimMachine } from '../sim/machine.js';
import { SimNvme } from '../sim/nvme/controller.js';
import { CMD_BUS_MASTER, PCI_COMMAND, type PciFunction } from '../sim/pci.js';
import type { SimPlatform } from '../sim/platform.js';
import type { IrqVector } from '../drivers/platform.js';
import { DmaboxError } from '../common/errors.js';
import type { Policy } from '../policies/types.js';
import type { MailboxTarget } from './sim-bar/host.js';

/** One IOMMU mapping handed to the container (a policy window, or half of a split one). */
export interface GrantedWindow {
  readonly window: Window;
  readonly perm: DmaPerm;
  readonly label: string;
  readonly hugePages: boolean;
}

export type WindowAccess = 'split' | 'read' | 'write' | 'read-write';

/** The PCI address the simulated device gets (one device per sandbox machine). */
export const SIM_ADDRESS = '0000:00:01.0';

/** Device access of a policy window (policies resolved before the field existed count as 'split'). */
export function windowAccess(w: Policy['windows'][number]): WindowAccess {
  return w.access ?? 'split';
}

export class SimDevice implements MailboxTarget {
  readonly machine: SimMachine;
  readonly fn: PciFunction;
  readonly platform: SimPlatform;
  readonly address = SIM_ADDRESS;
  readonly grants: GrantedWindow[] = [];
  /** Eventfds for interrupt vectors 0..n-1 (the container's, for one incarnation). */
  irqFds: number[] = [];
  /** What quarantine did, in order, for tests and status (`bme-off`, `flr`). */
  readonly quarantineLog: string[] = [];
  private vectors: IrqVector[] = [];
  private released = false;

  constructor(readonly policy: Policy, private readonly sys: Sys) {
    const d = policy.device;
    if (!('sim' in d) || d.sim !== 'nvme') {
      throw new DmaboxError('ERR_SANDBOX_DEVICE', `policy ${policy.name}: only simulated NVMe devices (device: sim:nvme) run in a simulated sandbox; got ${JSON.stringify(d)}`, {
        fix: 'use a sim:nvme device, or run the policy in the lab on real VFIO',
      });
    }
    this.machine = new SimMachine({ memory: new MemfdMemoryProvider({ sys, hugePages: 'never', name: `dmabox-${policy.name}` }) });
    const model = new SimNvme({
      serial: d.serial,
      namespaces: [{ blocks: Math.floor(d.capacity / d.blockSize), blockSize: d.blockSize }],
      maxQueueEntries: d.mqes,
      maxIoQueues: d.maxQueues,
    });
    this.fn = this.machine.attach(model, { address: SIM_ADDRESS });
    this.platform = this.machine.platform(SIM_ADDRESS);
    try {
      policy.windows.forEach((w, i) => {
        const label = w.label ?? `window${i}`;
        const access = windowAccess(w);
        if (access === 'split') {
          const half = Math.floor(w.size / 2 / 4096) * 4096;
          if (half < 4096) throw new DmaboxError('ERR_SANDBOX_WINDOW', `policy ${policy.name}: window ${label} of ${w.size} bytes is too small to split into a device-read and a device-write half`, { fix: 'give it at least 8KiB' });
          this.grant(half, { read: true, write: false }, `${label}.device-reads`, w.hugePages);
          this.grant(half, { read: false, write: true }, `${label}.device-writes`, w.hugePages);
        } else {
          this.grant(w.size, { read: access !== 'write', write: access !== 'read' }, label, w.hugePages);
        }
      });
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /** Where the block ring's data areas are (grant indices; each area at offset 0 of its grant). */
  blockData: { readGrant: number; writeGrant: number; bytes: number } | undefined;

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
        throw new DmaboxError('ERR_SANDBOX_WINDOW', `policy ${this.policy.name}: the block ring needs ${bytes} bytes of device-${write ? 'write' : 'read'}-only window for its data buffers, and no such window is that large`, {
          fix: `give the policy a window of at least ${2 * bytes} bytes with access 'split' (or one of ${bytes} bytes with access '${write ? 'write' : 'read'}'), on top of what the driver's queues need`,
        });
      }
      return best;
    };
    const readGrant = pick(false, true), writeGrant = pick(true, false);
    this.blockData = { readGrant, writeGrant, bytes };
    return { read: this.grants[readGrant]!.window, write: this.grants[writeGrant]!.window };
  }

  private grant(size: number, perm: DmaPerm, label: string, hugePages: boolean): void {
    const window = this.platform.dma.alloc(size, perm, { label });
    this.grants.push({ window, perm, label, hugePages });
  }

  /** Vectors the device offers of each kind. */
  get irqCounts(): { msix: number; intx: number } {
    return { msix: this.platform.irq.count('msix'), intx: this.platform.irq.count('intx') };
  }

  barSizes(): number[] {
    return [0, 1, 2, 3, 4, 5].map((i) => this.fn.barSize(i));
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

  // ---- MailboxTarget: the container's register accesses ----
  barSize(index: number): number { return this.fn.barSize(index); }
  barRead32(index: number, offset: number): number { return this.fn.barRead32(index, offset); }
  barWrite32(index: number, offset: number, value: number): void { this.fn.barWrite32(index, offset, value); }
  cfgRead(offset: number, width: 1 | 2 | 4): number { return this.fn.cfgRead(offset, width); }
  cfgWrite(offset: number, width: 1 | 2 | 4, value: number): void { this.fn.cfgWrite(offset, width, value); }
  irqEnable(kind: 'msix' | 'intx', vectors: number): number {
    if (vectors > this.irqFds.length) throw new DmaboxError('ERR_SANDBOX_IRQ', `${vectors} vectors asked, ${this.irqFds.length} granted`);
    this.vectors = this.platform.irq.enable(kind, vectors);
    const fds = this.irqFds;
    this.vectors.forEach((v, i) => v.onFire(() => this.sys.eventfdWrite(fds[i]!, 1n)));
    return vectors;
  }
  irqDisable(): void {
    this.platform.irq.disable();
    this.vectors = [];
  }
  reset(): void { this.platform.reset(); }

  /**
   * Between containers: bus mastering off (PCI command bit 2, so no DMA can start), interrupts
   * off, then a function-level reset (the device forgets its queues). Only after this may a
   * window be reused by the next container or unmapped.
   */
  quarantine(): void {
    this.fn.cfgWrite(PCI_COMMAND, 2, this.fn.cfgRead(PCI_COMMAND, 2) & ~CMD_BUS_MASTER);
    this.quarantineLog.push('bme-off');
    this.platform.irq.disable();
    this.vectors = [];
    this.fn.flr();
    this.quarantineLog.push('flr');
  }

  /** Quarantine, unmap and free every window, close the platform. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.quarantine();
    this.quarantineLog.push('unmap');
    this.closeIrqFds();
    this.platform.close();
  }
}
