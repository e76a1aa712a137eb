/**
 * The DmaAllocator of drivers/contract/platform.ts, built from an IOMMU backend (VFIO type1 or the
 * simulator), a memory provider (memfd or heap) and an IOVA allocator over the backend's ranges.
 *
 * Each window is one memory block and one IOMMU mapping, however many pages it spans (VFIO
 * type1 v2 cannot unmap part of a mapping, so a window that can be revoked alone must be its own
 * mapping). Windows that live and die together can be merged into one mapping (`allocMerged`),
 * and a driver that wants thousands of buffers takes one window and a BufferPool inside it.
 * Mappings are counted against the backend's DMA_AVAIL and pinned bytes against RLIMIT_MEMLOCK,
 * and both refuse with a clear error before the kernel would.
 */
import type { DmaAllocator, DmaAllocOptions, DmaPerm, DmaWindow } from '../drivers/contract/platform.js';
import { minPageSize, type IommuBackend, type IommuInfo } from './backend.js';
import { DmaError } from './errors.js';
import { IovaAllocator } from './iova.js';
import { MemlockAccount } from './memlock.js';
import type { DmaMemory, DmaMemoryProvider } from './memory.js';
import { Window } from './window.js';

/** One window of a merged allocation. */
export interface MergedWindowSpec {
  size: number;
  label?: string;
  /** IOVA alignment of this window (a power of two; default the IOMMU page size). */
  align?: number;
}

/** One IOMMU mapping and the windows that live in it. */
interface Mapping {
  readonly memory: DmaMemory;
  readonly iova: bigint;
  readonly size: number;
  readonly identity: boolean;
  mapped: boolean;
  readonly members: Set<Window>;
}

export interface IommuDmaAllocatorOptions {
  backend: IommuBackend;
  memory: DmaMemoryProvider;
  /** Pinned-memory accounting; default: unlimited (the simulator). */
  memlock?: MemlockAccount;
  /** Clamp IOVAs below 2^addressWidth in addition to the backend's ranges. */
  addressWidth?: number;
  /** Mappings to leave to others in the container (default 0). */
  reserveMappings?: number;
  /** Name for error messages: `sim:nvme0`. */
  name?: string;
}

export class IommuDmaAllocator implements DmaAllocator {
  readonly pageSize: number;
  readonly info: IommuInfo;
  readonly iova: IovaAllocator;
  readonly memlock: MemlockAccount;
  private readonly backend: IommuBackend;
  private readonly memory: DmaMemoryProvider;
  private readonly name: string;
  private readonly mappingBudget: number;
  /** Every live window and the mapping it lives in. */
  private readonly windows = new Map<Window, Mapping>();
  /** Live IOMMU mappings made by this allocator. */
  mappings = 0;

  constructor(options: IommuDmaAllocatorOptions) {
    this.backend = options.backend;
    this.memory = options.memory;
    this.info = options.backend.info();
    this.pageSize = minPageSize(this.info.pageSizes);
    this.iova = new IovaAllocator(this.info.ranges, { pageSize: this.pageSize, addressWidth: options.addressWidth });
    this.memlock = options.memlock ?? MemlockAccount.unlimited();
    this.name = options.name ?? options.backend.name;
    const avail = this.info.mappingsAvailable;
    this.mappingBudget = avail === undefined ? Infinity : Math.max(0, avail - (options.reserveMappings ?? 0));
  }

  /** Mappings this allocator may still make. */
  get mappingsLeft(): number {
    return this.mappingBudget - this.mappings;
  }

  /** Windows currently allocated (mapped or revoked). */
  get live(): number {
    return this.windows.size;
  }

  alloc(size: number, perm: DmaPerm, options: DmaAllocOptions = {}): Window {
    return this.allocMerged([{ size, label: options.label, align: options.align }], perm, options.label)[0]!;
  }

  /**
   * Several windows with one permission in ONE memory block and ONE IOMMU mapping: what a driver
   * that needs many small rings uses so the container's mapping budget (65,535 with VFIO type1)
   * and the kernel's page-pinning work stay small. The windows are laid out back to back, each
   * aligned as asked. They share their mapping's fate: revoking one revokes all of them (VFIO
   * type1 v2 cannot unmap part of a mapping), and the mapping goes when the last one is freed.
   */
  allocMerged(specs: readonly MergedWindowSpec[], perm: DmaPerm, groupLabel?: string): Window[] {
    if (!Array.isArray(specs) || specs.length === 0) {
      throw new DmaError('ERR_DMA_ARG', `${this.name}: a merged allocation needs at least one window`);
    }
    const label = groupLabel ?? specs.map((s) => s.label ?? 'dma').join('+');
    if (perm === null || typeof perm !== 'object' || typeof perm.read !== 'boolean' || typeof perm.write !== 'boolean' || (!perm.read && !perm.write)) {
      throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${label}": permission must allow the device to read, write or both`, {
        fix: 'use DEVICE_READS (data the device only reads), DEVICE_WRITES or DEVICE_READS_WRITES from drivers/contract/platform.ts',
      });
    }
    // Lay the windows out: each rounded to whole pages, each at an offset aligned as asked.
    const offsets: number[] = [];
    const sizes: number[] = [];
    let total = 0;
    let maxAlign = this.pageSize;
    for (const s of specs) {
      const what = s.label ?? label;
      if (!Number.isSafeInteger(s.size) || s.size <= 0) {
        throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${what}": size ${s.size} is not a positive integer`, { fix: 'ask for at least one byte' });
      }
      const asked = s.align ?? this.pageSize;
      if (!Number.isSafeInteger(asked) || asked <= 0 || 2 ** Math.round(Math.log2(asked)) !== asked) {
        throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${what}": alignment ${asked} is not a power of two`);
      }
      const align = Math.max(asked, this.pageSize);
      if (align > maxAlign) maxAlign = align;
      total = Math.ceil(total / align) * align;
      offsets.push(total);
      const rounded = Math.ceil(s.size / this.pageSize) * this.pageSize;
      sizes.push(rounded);
      total += rounded;
    }
    if (this.mappings >= this.mappingBudget) {
      throw new DmaError(
        'ERR_DMA_MAPPINGS',
        `${this.name}: window "${label}": the IOMMU container accepts no more mappings (${this.mappings} made, ${this.info.mappingsAvailable} were available)`,
        {
          fix: 'use fewer, larger windows (allocMerged, or a BufferPool in one window instead of a window per buffer), free windows no longer in use, or raise vfio_iommu_type1 dma_entry_limit',
        },
      );
    }
    this.memlock.charge(total, `window "${label}"`);
    let iova: bigint | undefined;
    let identity: bigint | undefined;
    let memory: DmaMemory | undefined;
    try {
      memory = this.memory.allocate(total, { label, align: Math.min(maxAlign, this.pageSize) });
      if (this.backend.identityAddress !== undefined) {
        // Passthrough: the device sees physical addresses; nothing to allocate.
        identity = this.backend.identityAddress(memory, 0);
      } else {
        // Huge-page memory at a huge-page-aligned IOVA lets the IOMMU use huge pages too.
        const hugeOk = memory.pageSize > this.pageSize && (this.info.pageSizes & BigInt(memory.pageSize)) !== 0n;
        iova = this.iova.alloc(total, hugeOk ? Math.max(maxAlign, memory.pageSize) : maxAlign);
      }
      this.backend.map(memory, 0, (iova ?? identity)!, total, perm);
    } catch (e) {
      memory?.release();
      if (iova !== undefined) this.iova.release(iova, total);
      this.memlock.release(total);
      throw e;
    }
    this.mappings++;
    const base = (iova ?? identity)!;
    const mapping: Mapping = { memory, iova: base, size: total, identity: identity !== undefined, mapped: true, members: new Set() };
    const out: Window[] = [];
    for (let i = 0; i < specs.length; i++) {
      const w = new Window(memory, offsets[i]!, base + BigInt(offsets[i]!), sizes[i]!, perm, specs[i]!.label ?? label);
      w.identity = mapping.identity;
      mapping.members.add(w);
      this.windows.set(w, mapping);
      out.push(w);
    }
    return out;
  }

  /**
   * Unmap a window from the IOMMU but keep its memory and its IOVA: the device faults on it from
   * now on, and the CPU can still read what is there. For a window from allocMerged, every window
   * of its mapping is revoked with it.
   */
  revoke(window: DmaWindow): void {
    const m = this.windows.get(this.own(window, 'revoke'))!;
    if (!m.mapped) return;
    this.backend.unmap(m.iova, m.size);
    this.mappings--;
    m.mapped = false;
    for (const w of m.members) w.state = 'revoked';
  }

  free(window: DmaWindow): void {
    const w = this.own(window, 'free');
    const m = this.windows.get(w)!;
    w.state = 'freed';
    this.windows.delete(w);
    m.members.delete(w);
    if (m.members.size > 0) return;
    if (m.mapped) {
      this.backend.unmap(m.iova, m.size);
      this.mappings--;
      m.mapped = false;
    }
    if (!m.identity) this.iova.release(m.iova, m.size);
    m.memory.release();
    this.memlock.release(m.size);
  }

  /** Free every window (platform close). */
  close(): void {
    for (const w of [...this.windows.keys()]) this.free(w);
  }

  private own(window: DmaWindow, op: string): Window {
    if (!(window instanceof Window) || !this.windows.has(window)) {
      const freed = window instanceof Window && window.state === 'freed';
      throw new DmaError('ERR_DMA_WINDOW_STATE', `${this.name}: ${op} of ${String(window)}: ${freed ? 'it was freed already' : 'it was not allocated here'}`, {
        fix: freed ? 'free each window once' : 'free a window through the allocator that made it',
      });
    }
    return window;
  }
}
