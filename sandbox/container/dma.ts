/**
 * The container's DmaAllocator: sub-allocation inside the windows the manager mapped.
 *
 * The container cannot map anything: every window was mapped in the device's IOMMU domain by the
 * manager, with one device permission, before the container started. `alloc(size, perm)` is served
 * only from a window mapped with exactly that permission (a device-read-only request never lands
 * in a device-writable window), so least privilege holds inside the sandbox, and the device can
 * never reach memory outside the grants whatever the driver does. Allocation happens at set-up,
 * not per I/O: a first-fit free list per window is enough.
 */
import type { DmaAllocOptions, DmaAllocator, DmaPerm, DmaWindow } from '../../drivers/contract/platform.js';
import { ContainerError } from './errors.js';

export interface Grant {
  readonly id: number;
  readonly iova: bigint;
  readonly size: number;
  readonly perm: DmaPerm;
  /** The CPU's view of the window (the container's mapping of the manager's memfd). */
  readonly bytes: Uint8Array;
}

interface Range {
  start: number;
  end: number;
}
interface Live {
  grant: Grant;
  start: number;
  size: number;
}

const PAGE = 4096;

function permName(p: DmaPerm): string {
  return p.read && p.write ? 'read-write' : p.read ? 'read' : p.write ? 'write' : 'none';
}

export class GrantAllocator implements DmaAllocator {
  readonly pageSize = PAGE;
  private readonly freeLists = new Map<Grant, Range[]>();
  private readonly live = new Map<DmaWindow, Live>();

  /** `reserved`: bytes at the start of a window that are not the driver's (the block ring's data areas). */
  constructor(
    readonly grants: readonly Grant[],
    reserved: readonly { grant: number; bytes: number }[] = [],
  ) {
    for (const g of grants) {
      const r = reserved.filter((x) => x.grant === g.id).reduce((n, x) => n + x.bytes, 0);
      if (r > g.size) throw new ContainerError('ERR_CONTAINER_DMA_EXHAUSTED', `window ${g.id}: ${r} reserved bytes do not fit its ${g.size}`);
      this.freeLists.set(g, r < g.size ? [{ start: r, end: g.size }] : []);
    }
  }

  /** Bytes still free in windows of a permission. */
  available(perm: DmaPerm): number {
    let n = 0;
    for (const [g, list] of this.freeLists) if (g.perm.read === perm.read && g.perm.write === perm.write) for (const r of list) n += r.end - r.start;
    return n;
  }

  alloc(size: number, perm: DmaPerm, options: DmaAllocOptions = {}): DmaWindow {
    if (!Number.isSafeInteger(size) || size <= 0)
      throw new ContainerError('ERR_CONTAINER_DMA_ARG', `DMA window of ${size} bytes: expected a positive byte count`);
    const align = Math.max(PAGE, options.align ?? PAGE);
    if ((align & (align - 1)) !== 0) throw new ContainerError('ERR_CONTAINER_DMA_ARG', `alignment ${align} is not a power of two`);
    const rounded = Math.ceil(size / PAGE) * PAGE;
    for (const g of this.grants) {
      if (g.perm.read !== perm.read || g.perm.write !== perm.write) continue;
      const list = this.freeLists.get(g)!;
      for (let i = 0; i < list.length; i++) {
        const r = list[i]!;
        // Align the IOVA (the CPU view follows it: both start at the window's start).
        const iovaStart = g.iova + BigInt(r.start);
        const pad = Number((BigInt(align) - (iovaStart % BigInt(align))) % BigInt(align));
        const start = r.start + pad;
        if (start + rounded > r.end) continue;
        list.splice(i, 1);
        if (start > r.start) list.splice(i++, 0, { start: r.start, end: start });
        if (start + rounded < r.end) list.splice(i, 0, { start: start + rounded, end: r.end });
        const bytes = g.bytes.subarray(start, start + rounded);
        bytes.fill(0);
        const w: DmaWindow = Object.freeze({
          iova: g.iova + BigInt(start),
          size: rounded,
          perm: g.perm,
          bytes,
          view: new DataView(bytes.buffer, bytes.byteOffset, rounded),
        });
        this.live.set(w, { grant: g, start, size: rounded });
        return w;
      }
    }
    throw new ContainerError(
      'ERR_CONTAINER_DMA_EXHAUSTED',
      `${options.label ?? 'DMA window'}: no granted window with device access '${permName(perm)}' has ${rounded} free bytes (free: ${this.available(perm)})`,
      {
        fix: `give the policy a larger window with access '${permName(perm)}' (or 'split'), or ask the driver for fewer or smaller queues`,
      },
    );
  }

  free(window: DmaWindow): void {
    const l = this.live.get(window);
    if (!l) throw new ContainerError('ERR_CONTAINER_DMA_ARG', `free of a DMA window this allocator did not hand out (iova 0x${window.iova.toString(16)})`);
    this.live.delete(window);
    const list = this.freeLists.get(l.grant)!;
    list.push({ start: l.start, end: l.start + l.size });
    list.sort((a, b) => a.start - b.start);
    for (let i = 0; i + 1 < list.length;) {
      if (list[i]!.end === list[i + 1]!.start) {
        list[i]!.end = list[i + 1]!.end;
        list.splice(i + 1, 1);
      } else i++;
    }
  }

  /** Windows handed out and not freed. */
  get liveCount(): number {
    return this.live.size;
  }
}
