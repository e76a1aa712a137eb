/**
 * The DmaAllocator of drivers/platform.ts, built from an IOMMU backend (VFIO type1 or the
 * simulator), a memory provider (memfd or heap) and an IOVA allocator over the backend's ranges.
 *
 * Each window is one memory block and one IOMMU mapping, however many pages it spans (VFIO
 * type1 v2 cannot unmap part of a mapping, so a window that can be revoked alone must be its own
 * mapping; a driver that wants thousands of buffers takes one window and a BufferPool inside it).
 * Mappings are counted against the backend's DMA_AVAIL and pinned bytes against RLIMIT_MEMLOCK,
 * and both refuse with a clear error before the kernel would.
 */
import type { DmaAllocator, DmaAllocOptions, DmaPerm, DmaWindow } from '../drivers/platform.js';
import { minPageSize, type IommuBackend, type IommuInfo } from './backend.js';
import { DmaError } from './errors.js';
import { IovaAllocator } from './iova.js';
import { MemlockAccount } from './memlock.js';
import type { DmaMemoryProvider } from './memory.js';
import { Window } from './window.js';

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
  private readonly windows = new Set<Window>();
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
    const label = options.label ?? 'dma';
    if (!Number.isSafeInteger(size) || size <= 0) {
      throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${label}": size ${size} is not a positive integer`, { fix: 'ask for at least one byte' });
    }
    if (perm === null || typeof perm !== 'object' || typeof perm.read !== 'boolean' || typeof perm.write !== 'boolean' || (!perm.read && !perm.write)) {
      throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${label}": permission must allow the device to read, write or both`, {
        fix: 'use DEVICE_READS (data the device only reads), DEVICE_WRITES or DEVICE_READS_WRITES from drivers/platform.ts',
      });
    }
    const align = options.align ?? this.pageSize;
    if (!Number.isSafeInteger(align) || align <= 0 || 2 ** Math.round(Math.log2(align)) !== align) {
      throw new DmaError('ERR_DMA_ARG', `${this.name}: window "${label}": alignment ${align} is not a power of two`);
    }
    const rounded = Math.ceil(size / this.pageSize) * this.pageSize;
    if (this.mappings >= this.mappingBudget) {
      throw new DmaError('ERR_DMA_MAPPINGS', `${this.name}: window "${label}": the IOMMU container accepts no more mappings (${this.mappings} made, ${this.info.mappingsAvailable} were available)`, {
        fix: 'use fewer, larger windows (a BufferPool in one window instead of a window per buffer), free windows no longer in use, or raise vfio_iommu_type1 dma_entry_limit',
      });
    }
    this.memlock.charge(rounded, `window "${label}"`);
    let iova: bigint | undefined;
    let identity: bigint | undefined;
    let memory;
    try {
      memory = this.memory.allocate(rounded, { label, align: Math.min(align, this.pageSize) });
      if (this.backend.identityAddress !== undefined) {
        // Passthrough: the device sees physical addresses; nothing to allocate.
        identity = this.backend.identityAddress(memory, 0);
      } else {
        iova = this.iova.alloc(rounded, align);
      }
      this.backend.map(memory, 0, (iova ?? identity)!, rounded, perm);
    } catch (e) {
      memory?.release();
      if (iova !== undefined) this.iova.release(iova, rounded);
      this.memlock.release(rounded);
      throw e;
    }
    this.mappings++;
    const w = new Window(memory, 0, (iova ?? identity)!, rounded, perm, label);
    w.identity = identity !== undefined;
    this.windows.add(w);
    return w;
  }

  /**
   * Unmap a window from the IOMMU but keep its memory and its IOVA: the device faults on it from
   * now on, and the CPU can still read what is there.
   */
  revoke(window: DmaWindow): void {
    const w = this.own(window, 'revoke');
    if (w.state === 'revoked') return;
    this.backend.unmap(w.iova, w.size);
    this.mappings--;
    w.state = 'revoked';
  }

  free(window: DmaWindow): void {
    const w = this.own(window, 'free');
    if (w.state === 'mapped') {
      this.backend.unmap(w.iova, w.size);
      this.mappings--;
    }
    w.state = 'freed';
    this.windows.delete(w);
    if (!w.identity) this.iova.release(w.iova, w.size);
    w.memory.release();
    this.memlock.release(w.size);
  }

  /** Free every window (platform close). */
  close(): void {
    for (const w of [...this.windows]) this.free(w);
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
