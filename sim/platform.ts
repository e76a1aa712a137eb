/**
 * SimPlatform: drivers/contract/platform.ts over a simulated PCI function. A driver cannot tell it from the
 * VFIO platform (platform/vfio.ts); the lab tests on QEMU keep the two honest.
 *
 * - config: bounds-checked (0..4095), naturally aligned accesses to the function's config space.
 * - bar(i): a RegisterSpace over the function's BAR: 4-byte-aligned 32-bit accesses only, bounds
 *   checked; 64-bit registers as two 32-bit accesses, low dword first (NVMe 1.4 §3.1).
 * - dma: windows from the simulated IOMMU, mapped in this device's domain.
 * - irq: MSI-X (the function's table programmed and unmasked, as VFIO_DEVICE_SET_IRQS does),
 *   MSI (address/data programmed, a power of two granted) or INTx; handlers run from setImmediate, coalesced, never inside the device's register write.
 * - clock: real monotonic time; sleep yields to the event loop so deferred device work runs.
 * - reset: function-level reset. close: interrupts off, windows freed, bus mastering off.
 *
 * Opening a platform sets Memory Space Enable, like vfio-pci's open (pci_enable_device); bus
 * mastering stays off until the driver (or `options.busMaster`) sets it.
 */
import type { Clock, ConfigSpace, DmaAllocator, Interrupts, IrqKind, IrqVector, Platform, RegisterSpace } from '../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../dma/allocator.js';
import type { MemlockAccount } from '../dma/memlock.js';
import type { DmaMemoryProvider } from '../dma/memory.js';
import { SimIommuBackend } from './backend.js';
import { SimError } from './errors.js';
import type { PhysicalMemory } from './memory.js';
import { CAP_MSI_OFFSET, CAP_MSIX_OFFSET, CONFIG_SIZE, type PciFunction } from './pci.js';
import { setField } from '../spec/field.js';
import { PCI, setBusMaster } from '../spec/pci/config.js';
import { MSI, MSIX } from '../spec/pci/capabilities.js';

const PCI_COMMAND = PCI.COMMAND.offset;
const { BUS_MASTER, INTX_DISABLE, MEMORY_SPACE } = PCI.COMMAND;

export interface SimPlatformOptions {
  /** Where window memory comes from (already registering simulated RAM). */
  memory: DmaMemoryProvider;
  physical: PhysicalMemory;
  memlock?: MemlockAccount;
  /** Set Bus Master Enable at open (default false: the driver sets it). */
  busMaster?: boolean;
  /** Called by close(). */
  onClose?: () => void;
}

class SimConfig implements ConfigSpace {
  constructor(
    private readonly p: SimPlatform,
    private readonly fn: PciFunction,
  ) {}
  private check(offset: number, size: number, op: string): void {
    this.p.checkOpen();
    if (!Number.isInteger(offset) || offset < 0 || offset + size > CONFIG_SIZE || offset % size !== 0) {
      throw new SimError('ERR_SIM_CONFIG', `${this.p.name}: config ${op} at ${offset}: must be ${size}-byte aligned inside ${CONFIG_SIZE} bytes`, {
        fix: 'use an offset from the PCI header or a capability found by walking the capability list',
      });
    }
  }
  read8(offset: number): number {
    this.check(offset, 1, 'read8');
    return this.fn.cfgRead(offset, 1);
  }
  read16(offset: number): number {
    this.check(offset, 2, 'read16');
    return this.fn.cfgRead(offset, 2);
  }
  read32(offset: number): number {
    this.check(offset, 4, 'read32');
    return this.fn.cfgRead(offset, 4);
  }
  write16(offset: number, value: number): void {
    this.check(offset, 2, 'write16');
    this.fn.cfgWrite(offset, 2, value & 0xffff);
  }
  write32(offset: number, value: number): void {
    this.check(offset, 4, 'write32');
    this.fn.cfgWrite(offset, 4, value >>> 0);
  }
}

class SimBar implements RegisterSpace {
  readonly size: number;
  private readonly last32: number;
  constructor(
    private readonly p: SimPlatform,
    private readonly fn: PciFunction,
    private readonly index: number,
  ) {
    this.size = fn.barSize(index);
    this.last32 = this.size - 4;
  }
  private bad(offset: number, width: number): SimError {
    return new SimError(
      'ERR_SIM_BAR',
      `${this.p.name}: BAR${this.index} ${width}-bit access at ${offset}: must be a 4-byte-aligned offset with the access inside 0..${this.size - 1}`,
      {
        fix: 'check the register offset against the register map',
      },
    );
  }
  read32(offset: number): number {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32) throw this.bad(offset, 32);
    if (this.p.closed) this.p.checkOpen();
    return this.fn.barRead32(this.index, offset);
  }
  write32(offset: number, value: number): void {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32) throw this.bad(offset, 32);
    if (this.p.closed) this.p.checkOpen();
    this.fn.barWrite32(this.index, offset, value >>> 0);
  }
  read64(offset: number): bigint {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32 - 4) throw this.bad(offset, 64);
    const lo = this.read32(offset);
    const hi = this.read32(offset + 4);
    return (BigInt(hi) << 32n) | BigInt(lo);
  }
  write64(offset: number, value: bigint): void {
    if (offset >>> 0 !== offset || (offset & 3) !== 0 || offset > this.last32 - 4) throw this.bad(offset, 64);
    this.write32(offset, Number(value & 0xffffffffn));
    this.write32(offset + 4, Number((value >> 32n) & 0xffffffffn));
  }
}

class SimVector implements IrqVector {
  readonly handlers: (() => void)[] = [];
  constructor(readonly index: number) {}
  onFire(handler: () => void): void {
    this.handlers.push(handler);
  }
}

/** MSI-X message address for the simulated LAPIC (Intel SDM Vol. 3 §11.11.1): 0xFEE00000. */
const MSI_ADDRESS = 0xfee00000;

class SimInterrupts implements Interrupts {
  private vectors: SimVector[] = [];
  private kind: IrqKind | undefined;
  private fired = new Uint8Array(0);
  private flushScheduled = false;
  /** Interrupts that reached the platform. */
  received = 0;

  constructor(
    private readonly p: SimPlatform,
    private readonly fn: PciFunction,
  ) {}

  count(kind: IrqKind): number {
    if (kind === 'msix') return this.fn.msix?.vectors ?? 0;
    if (kind === 'intx') return this.fn.intx ? 1 : 0;
    if (kind === 'msi') return this.fn.msi?.vectors ?? 0;
    throw new SimError('ERR_SIM_IRQ', `${this.p.name}: unknown interrupt kind ${String(kind)}`, { fix: "use 'msix', 'msi' or 'intx'" });
  }

  enable(kind: IrqKind, n: number): IrqVector[] {
    this.p.checkOpen();
    const max = this.count(kind);
    if (!Number.isInteger(n) || n < 1 || n > max) {
      throw new SimError('ERR_SIM_IRQ', `${this.p.name}: cannot enable ${n} ${kind} vector(s): the function offers ${max}`, {
        fix: max > 0 ? `ask for 1..${max}` : `use a kind the function has (msix: ${this.count('msix')}, intx: ${this.count('intx')})`,
      });
    }
    this.disable();
    this.vectors = Array.from({ length: n }, (_, i) => new SimVector(i));
    this.fired = new Uint8Array(n);
    this.kind = kind;
    this.fn.irqSink = (k, v) => this.fire(k, v);
    const cmd = this.fn.cfgRead(PCI_COMMAND, 2);
    if (kind === 'msix') {
      const d = this.fn.model.msix!;
      // Program and unmask vectors 0..n-1 through the BAR, as the kernel does for VFIO_DEVICE_SET_IRQS.
      for (let v = 0; v < n; v++) {
        const e = d.tableOffset + v * 16;
        this.fn.barWrite32(d.bar, e, MSI_ADDRESS);
        this.fn.barWrite32(d.bar, e + 4, 0);
        this.fn.barWrite32(d.bar, e + 8, v);
        this.fn.barWrite32(d.bar, e + 12, 0);
      }
      this.fn.cfgWrite(PCI_COMMAND, 2, cmd | INTX_DISABLE.mask);
      const mc = this.fn.cfgRead(CAP_MSIX_OFFSET + MSIX.MC.offset, 2);
      this.fn.cfgWrite(CAP_MSIX_OFFSET + MSIX.MC.offset, 2, mc | MSIX.MC.ENABLE.mask);
    } else if (kind === 'msi') {
      // MSI grants powers of two (§6.8.1.3): grant the smallest that covers n.
      const mme = Math.ceil(Math.log2(n));
      const at = CAP_MSI_OFFSET;
      this.fn.cfgWrite(at + MSI.ADDR_LO.offset, 4, MSI_ADDRESS);
      this.fn.cfgWrite(at + MSI.ADDR_HI.offset, 4, 0);
      this.fn.cfgWrite(at + MSI.DATA.offset, 2, 0);
      this.fn.cfgWrite(PCI_COMMAND, 2, cmd | INTX_DISABLE.mask);
      this.fn.cfgWrite(at + MSI.MC.offset, 2, setField(MSI.MC.ENABLE.mask, MSI.MC.MME, mme));
    } else {
      this.fn.cfgWrite(PCI_COMMAND, 2, cmd & ~INTX_DISABLE.mask);
    }
    return this.vectors.slice();
  }

  disable(): void {
    if (this.kind === 'msix') {
      const d = this.fn.model.msix!;
      for (let v = 0; v < this.vectors.length; v++) this.fn.barWrite32(d.bar, d.tableOffset + v * 16 + 12, 1);
      const mc = this.fn.cfgRead(CAP_MSIX_OFFSET + MSIX.MC.offset, 2);
      this.fn.cfgWrite(CAP_MSIX_OFFSET + MSIX.MC.offset, 2, mc & ~MSIX.MC.ENABLE.mask);
    } else if (this.kind === 'msi') {
      const at = CAP_MSI_OFFSET + MSI.MC.offset;
      this.fn.cfgWrite(at, 2, this.fn.cfgRead(at, 2) & ~MSI.MC.ENABLE.mask);
    } else if (this.kind === 'intx') {
      this.fn.cfgWrite(PCI_COMMAND, 2, this.fn.cfgRead(PCI_COMMAND, 2) | INTX_DISABLE.mask);
    }
    this.kind = undefined;
    this.vectors = [];
    this.fn.irqSink = undefined;
  }

  private fire(kind: IrqKind, vector: number): void {
    if (kind !== this.kind) return;
    // A message whose data names a vector we did not route: dropped, as an unrouted eventfd would.
    if (vector >= this.fired.length) return;
    this.received++;
    this.fired[vector] = 1;
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      setImmediate(this.flush);
    }
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    const fired = this.fired,
      vectors = this.vectors;
    for (let v = 0; v < fired.length && v < vectors.length; v++) {
      if (fired[v] === 0) continue;
      fired[v] = 0;
      const hs = vectors[v]!.handlers;
      for (let i = 0; i < hs.length; i++) hs[i]!();
    }
  };
}

const clock: Clock = {
  now: () => performance.now(),
  sleep: (ms: number) =>
    new Promise<void>((resolve) => {
      if (ms > 0) setTimeout(resolve, ms);
      else setImmediate(resolve);
    }),
};

export class SimPlatform implements Platform {
  readonly name: string;
  readonly config: ConfigSpace;
  readonly dma: IommuDmaAllocator;
  readonly irq: Interrupts;
  readonly clock: Clock = clock;
  readonly fn: PciFunction;
  closed = false;
  private readonly bars: (SimBar | undefined)[] = [];
  private readonly onClose: (() => void) | undefined;

  constructor(fn: PciFunction, options: SimPlatformOptions) {
    this.fn = fn;
    this.name = `sim:${fn.model.name}@${fn.address}`;
    this.config = new SimConfig(this, fn);
    this.irq = new SimInterrupts(this, fn);
    this.dma = new IommuDmaAllocator({
      backend: new SimIommuBackend(fn.domain, options.physical),
      memory: options.memory,
      memlock: options.memlock,
      name: this.name,
    });
    this.onClose = options.onClose;
    const cmd = fn.cfgRead(PCI_COMMAND, 2) | MEMORY_SPACE.mask | (options.busMaster ? BUS_MASTER.mask : 0);
    fn.cfgWrite(PCI_COMMAND, 2, cmd);
  }

  /** False when the machine's IOMMU is in passthrough: nothing this device does is checked. */
  get confined(): boolean {
    return this.fn.iommu.confined;
  }

  /** For logs and `dmabox status`: the device, its DMA state and whether it is confined (with the warning if not). */
  status(): {
    name: string;
    confined: boolean;
    warning: string | undefined;
    busMaster: boolean;
    hung: boolean;
    windows: number;
    mappings: number;
    faults: number;
    deviceFaults: number;
    fatal: boolean;
  } {
    const iommu = this.fn.iommu.status();
    return {
      name: this.name,
      confined: iommu.confined,
      warning: iommu.warning,
      busMaster: this.fn.busMasterEnabled,
      hung: this.fn.hung,
      windows: this.dma.live,
      mappings: this.dma.mappings,
      faults: this.fn.iommu.faults(this.fn.address).length,
      /** Exceptions caught inside the model (sim/pci.ts deviceFault), and whether DEVSTA.FED is set. */
      deviceFaults: this.fn.faultCount,
      fatal: this.fn.fatal,
    };
  }

  /** The DmaAllocator, typed as the interface (the concrete one adds revoke()). */
  get allocator(): DmaAllocator {
    return this.dma;
  }

  bar(index: number): RegisterSpace {
    this.checkOpen();
    if (!Number.isInteger(index) || index < 0 || index > 5 || this.fn.barSize(index) === 0) {
      const have = [0, 1, 2, 3, 4, 5].filter((i) => this.fn.barSize(i) > 0).join(', ');
      throw new SimError('ERR_SIM_BAR', `${this.name}: BAR ${index} is not a memory BAR of this function (it has: ${have || 'none'})`);
    }
    let b = this.bars[index];
    if (b === undefined) {
      b = new SimBar(this, this.fn, index);
      this.bars[index] = b;
    }
    return b;
  }

  reset(): void {
    this.checkOpen();
    this.fn.flr();
  }

  close(): void {
    if (this.closed) return;
    this.irq.disable();
    // Stop the device before its memory goes away: no DMA into freed windows.
    setBusMaster(this.config, false);
    this.dma.close();
    this.closed = true;
    this.onClose?.();
  }

  checkOpen(): void {
    if (this.closed) throw new SimError('ERR_SIM_STATE', `${this.name}: the platform is closed`, { fix: 'open a new one with machine.platform(address)' });
  }
}
