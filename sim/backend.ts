/**
 * The simulated IOMMU as a dma/ IommuBackend for one device's domain, and the memory provider that
 * turns DMA memory into simulated physical RAM.
 *
 * `info()` reports what QEMU's VT-d reports through VFIO (LAB-NOTES): page sizes 0x40201000
 * (4 KiB, 2 MiB, 1 GiB), a 39-bit address width, the x86 MSI window 0xfee00000..0xfeefffff cut out
 * of the IOVA ranges, and 65535 mappings (type1's default dma_entry_limit) less those in use.
 */
import type { DmaPerm } from '../drivers/contract/platform.js';
import type { IommuBackend, IommuInfo, IovaRange } from '../dma/backend.js';
import { DmaError } from '../dma/errors.js';
import type { DmaMemory, DmaMemoryOptions, DmaMemoryProvider } from '../dma/memory.js';
import { PERM_READ, PERM_WRITE, type IommuDomain } from './iommu.js';
import type { PhysicalMemory } from './memory.js';

export const SIM_PAGE_SIZES = 0x40201000n;
export const SIM_ADDRESS_WIDTH = 39;
export const SIM_DMA_ENTRY_LIMIT = 65535;
export const SIM_IOVA_RANGES: readonly IovaRange[] = Object.freeze([
  { start: 0n, end: 0xfedfffffn },
  { start: 0xfef00000n, end: (1n << BigInt(SIM_ADDRESS_WIDTH)) - 1n },
]);

export class SimIommuBackend implements IommuBackend {
  readonly name: string;
  private readonly domain: IommuDomain;
  private readonly mem: PhysicalMemory;
  readonly identityAddress: ((memory: DmaMemory, offset: number) => bigint) | undefined;

  constructor(domain: IommuDomain, mem: PhysicalMemory) {
    this.domain = domain;
    this.mem = mem;
    this.name = `sim-iommu:${domain.device}`;
    this.identityAddress = domain.iommu.passthrough ? (memory, offset) => BigInt(this.phys(memory, offset)) : undefined;
  }

  info(): IommuInfo {
    return {
      pageSizes: SIM_PAGE_SIZES,
      ranges: SIM_IOVA_RANGES,
      mappingsAvailable: SIM_DMA_ENTRY_LIMIT - this.domain.mappings,
    };
  }

  map(memory: DmaMemory, offset: number, iova: bigint, size: number, perm: DmaPerm): void {
    const phys = this.phys(memory, offset);
    if (this.domain.iommu.passthrough) return; // nothing to map: the device sees physical addresses
    this.domain.map(Number(iova), phys, size, (perm.read ? PERM_READ : 0) | (perm.write ? PERM_WRITE : 0));
  }

  unmap(iova: bigint, size: number): void {
    if (this.domain.iommu.passthrough) return;
    this.domain.unmap(Number(iova), size);
  }

  private phys(memory: DmaMemory, offset: number): number {
    const region = this.mem.regionOf(memory.bytes);
    if (region === undefined) {
      throw new DmaError('ERR_DMA_MAP', `${this.name}: memory "${memory.label}" is not simulated RAM`, {
        fix: "allocate DMA memory through the machine's provider (SimRamProvider), which registers it as a physical region",
      });
    }
    return region.base + offset;
  }
}

/** Wraps a provider (heap or memfd) so each block it allocates is registered as simulated physical RAM. */
export class SimRamProvider implements DmaMemoryProvider {
  readonly name: string;
  private readonly inner: DmaMemoryProvider;
  private readonly mem: PhysicalMemory;

  constructor(inner: DmaMemoryProvider, mem: PhysicalMemory) {
    this.inner = inner;
    this.mem = mem;
    this.name = `sim-ram(${inner.name})`;
  }

  allocate(size: number, options: DmaMemoryOptions = {}): DmaMemory {
    const m = this.inner.allocate(size, options);
    const region = this.mem.add(m.bytes, m.label);
    const mem = this.mem;
    let released = false;
    // Keep what the inner provider adds (memfd's mapAgain), replace only release.
    return {
      ...m,
      release() {
        if (released) return;
        released = true;
        mem.remove(region);
        m.release();
      },
    };
  }
}
