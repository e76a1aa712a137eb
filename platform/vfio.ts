/**
 * VfioPlatform: drivers/contract/platform.ts over real VFIO, for in-process use (tests, the lab, benches).
 *
 * open(address):
 *   1. the function's IOMMU group from sysfs (optionally binding it to vfio-pci first);
 *   2. container (/dev/vfio/vfio) -> group (/dev/vfio/N) -> SET_CONTAINER -> SET_IOMMU (type1v2)
 *      -> device fd;
 *   3. DMA: an IommuDmaAllocator over the container (VFIO type1 backend), memfd memory, memlock
 *      accounting from RLIMIT_MEMLOCK, IOVAs inside the ranges the kernel reports;
 *   4. bus mastering (PCI command bit 2) on request, so the driver can also do it itself.
 * close() goes in the order the kernel needs: interrupts off, bus mastering off (the device stops
 * DMA before its windows go), windows unmapped and freed, BARs unmapped, device fd, group,
 * container, and the driver binding given back if open() made it.
 *
 * All syscalls go through the linux-sys seam; pass `sys` to run over a fake.
 */
import { setBusMaster } from '../spec/pci/config.js';
import { Container, Group, pciFunction, bindToVfio, releaseFromVfio, VfioError, VfioCode, type BindReceipt, type Device, type Mmio } from 'vfio-bindings';
import { defaultSys, RLIMIT_MEMLOCK, type Sys } from 'linux-sys';
import { closeSync, constants as fsConstants, ftruncateSync, openSync, writeFileSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import type { Clock, ConfigSpace, Interrupts, IrqKind, IrqVector, Platform, RegisterSpace } from '../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../dma/allocator.js';
import { MemlockAccount } from '../dma/memlock.js';
import { MemfdMemoryProvider } from '../dma/memfd.js';
import type { DmaMemoryProvider } from '../dma/memory.js';
import { VfioType1Backend } from '../dma/vfio-backend.js';

export interface VfioPlatformOptions {
  /** The syscall seam (default: the real one, koffi). */
  sys?: Sys;
  /** sysfs root (default /sys) and group node directory (default /dev/vfio). */
  sysfsRoot?: string;
  devDir?: string;
  /** The IOMMU group, when known; default: read from sysfs. */
  group?: number;
  /** Bind the function to vfio-pci first (root), and give it back on close. */
  bind?: boolean;
  /** Set Bus Master Enable during open (default false: the driver sets it). */
  busMaster?: boolean;
  /** Window memory (default: memfd through the seam). */
  memory?: DmaMemoryProvider;
  /** Pinned-memory accounting (default: from RLIMIT_MEMLOCK and /proc/self/status; exempt with CAP_IPC_LOCK). */
  memlock?: MemlockAccount;
  /** Huge pages for the memfd provider (default 'auto'). */
  hugePages?: 'auto' | 'never' | 'always';
}

const clock: Clock = {
  now: () => performance.now(),
  sleep: (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms > 0) setTimeout(resolve, ms);
      else setImmediate(resolve);
    }),
};

/** IrqVector for INTx: the kernel automasks INTx on each interrupt, so unmask after the handlers ran. */
class IntxVector implements IrqVector {
  readonly index = 0;
  private readonly handlers: (() => void)[] = [];
  constructor(inner: IrqVector, device: Device) {
    inner.onFire(() => {
      for (const h of this.handlers) h();
      if (!device.isClosed) device.unmaskInterrupt('intx', 0);
    });
  }
  onFire(handler: () => void): void {
    this.handlers.push(handler);
  }
}

class VfioInterrupts implements Interrupts {
  constructor(private readonly device: Device) {}
  count(kind: IrqKind): number {
    return this.device.irqCount(kind);
  }
  enable(kind: IrqKind, n: number): IrqVector[] {
    const vs = this.device.enableInterrupts(kind, n);
    if (kind === 'intx') return vs.map((v) => new IntxVector(v, this.device));
    return vs;
  }
  disable(): void {
    this.device.disableInterrupts();
  }
}

export class VfioPlatform implements Platform {
  readonly name: string;
  readonly address: string;
  readonly config: ConfigSpace;
  readonly dma: IommuDmaAllocator;
  readonly irq: Interrupts;
  readonly clock: Clock = clock;
  readonly container: Container;
  readonly group: Group;
  readonly device: Device;
  private readonly bars: (Mmio | undefined)[] = [];
  private readonly receipt: BindReceipt | undefined;
  private readonly sysfsRoot: string | undefined;
  /** The sysfs files that give the function back, opened at bind (see releaseFiles). */
  private readonly release: ReleaseFiles | undefined;
  private closed = false;

  private constructor(
    address: string,
    container: Container,
    group: Group,
    device: Device,
    dma: IommuDmaAllocator,
    receipt: BindReceipt | undefined,
    sysfsRoot: string | undefined,
    release: ReleaseFiles | undefined,
  ) {
    this.release = release;
    this.address = address;
    this.name = `vfio:${address}`;
    this.container = container;
    this.group = group;
    this.device = device;
    this.config = device.config;
    this.dma = dma;
    this.irq = new VfioInterrupts(device);
    this.receipt = receipt;
    this.sysfsRoot = sysfsRoot;
  }

  static open(address: string, options: VfioPlatformOptions = {}): VfioPlatform {
    const sys = options.sys ?? defaultSys();
    const sysfs = options.sysfsRoot !== undefined ? { root: options.sysfsRoot } : {};
    const receipt = options.bind ? bindToVfio(address, sysfs) : undefined;
    let container: Container | undefined;
    try {
      let groupNumber = options.group;
      if (groupNumber === undefined) {
        const fn = pciFunction(address, sysfs);
        if (fn.iommuGroup === undefined) {
          throw new VfioError(VfioCode.GROUP_NOT_FOUND, `${address} has no IOMMU group`, {
            op: `open ${address}`,
            fix: 'turn the IOMMU on (intel_iommu=on or amd_iommu=on on the kernel command line, VT-d/AMD-Vi in the firmware)',
          });
        }
        groupNumber = fn.iommuGroup;
      }
      container = Container.open({ sys });
      const group = Group.open(groupNumber, {
        sys,
        ...(options.devDir ? { devDir: options.devDir } : {}),
        ...(options.sysfsRoot ? { sysfsRoot: options.sysfsRoot } : {}),
      });
      try {
        group.setContainer(container);
      } catch (e) {
        group.close();
        throw e;
      }
      container.setIommu();
      const device = group.device(address);
      const memory = options.memory ?? new MemfdMemoryProvider({ sys, hugePages: options.hugePages, name: `dmabox:${address}` });
      const dma = new IommuDmaAllocator({
        backend: new VfioType1Backend(container),
        memory,
        memlock: options.memlock ?? MemlockAccount.fromProcess(sys.getrlimit(RLIMIT_MEMLOCK).cur),
        name: `vfio:${address}`,
      });
      const p = new VfioPlatform(
        address,
        container,
        group,
        device,
        dma,
        receipt,
        options.sysfsRoot,
        receipt ? releaseFiles(receipt, options.sysfsRoot ?? '/sys') : undefined,
      );
      if (options.busMaster) setBusMaster(device.config, true);
      return p;
    } catch (e) {
      container?.close();
      if (receipt) {
        try {
          releaseFromVfio(receipt, sysfs);
        } catch {
          // the open error is the one to report
        }
      }
      throw e;
    }
  }

  bar(index: number): RegisterSpace {
    this.checkOpen();
    let b = this.bars[index];
    if (b === undefined || b.isClosed) {
      b = this.device.mapBar(index);
      this.bars[index] = b;
    }
    return b;
  }

  reset(): void {
    this.checkOpen();
    this.device.reset();
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const errors: unknown[] = [];
    const step = (f: () => void): void => {
      try {
        f();
      } catch (e) {
        errors.push(e);
      }
    };
    step(() => this.device.disableInterrupts());
    step(() => setBusMaster(this.config, false));
    step(() => this.dma.close());
    step(() => this.container.close()); // closes the group, which closes the device (and its BARs)
    if (this.receipt)
      step(() =>
        releaseFromVfio(this.receipt!, {
          ...(this.sysfsRoot !== undefined ? { root: this.sysfsRoot } : {}),
          ...(this.release ? { write: this.release.write } : {}),
        }),
      );
    this.release?.close();
    if (errors.length > 0) throw errors[0];
  }

  private checkOpen(): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, `${this.name} is closed`, { op: 'platform' });
  }
}

export interface ReleaseFiles {
  write(path: string, value: string): void;
  close(): void;
}

/**
 * The sysfs files releaseFromVfio writes to give a function back (its driver_override, vfio-pci's
 * unbind, drivers_probe), opened now, while the manager is root: they belong to root, and the manager
 * leaves root after set-up (sandbox/manager/privilege.ts). A file that cannot be opened now is
 * written by path at release, as before.
 */
export function releaseFiles(receipt: BindReceipt, root: string): ReleaseFiles | undefined {
  if (receipt.alreadyBound) return undefined;
  const fds = new Map<string, number>();
  for (const path of [
    join(root, 'bus/pci/devices', receipt.address, 'driver_override'),
    join(root, 'bus/pci/drivers/vfio-pci/unbind'),
    join(root, 'bus/pci/drivers_probe'),
  ]) {
    try {
      fds.set(path, openSync(path, fsConstants.O_WRONLY));
    } catch {
      // written by path at release
    }
  }
  return {
    write: (path, value) => {
      const fd = fds.get(path);
      if (fd === undefined) return void writeFileSync(path, value);
      try {
        ftruncateSync(fd, 0); // a regular file (a test's sysfs tree); sysfs attributes take each write whole
      } catch {
        // sysfs
      }
      writeSync(fd, value, 0);
    },
    close: () => {
      for (const fd of fds.values()) closeSync(fd);
      fds.clear();
    },
  };
}
