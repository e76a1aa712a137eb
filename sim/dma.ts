/**
 * The device side of DMA: what a device model calls to read and write host memory.
 *
 * One `DeviceDma` is bound to one PCI function: its bus-master enable bit and its IOMMU domain.
 * Every transfer is checked whole before a byte moves: bus mastering on, each page present with
 * the needed permission, each page backed by memory. A refused transfer returns false (or -1 for
 * the value readers), is recorded in the IOMMU's fault log, and leaves memory untouched: there
 * are no partial transfers. IOVAs are `number`s (exact below 2^53).
 *
 * The single-page case (queue entries, descriptors, 4 KiB data) is the fast path: one cached
 * page-table lookup, one cached region lookup. The value helpers allocate nothing; a byte copy
 * above 16 bytes makes one short-lived subarray view for TypedArray.set (the only memcpy JS has:
 * a byte loop was twice as slow at 64 bytes, Buffer#copy no faster, on Node 20).
 */
import type { DmaAccess, FaultReason, IommuDomain, SimIommu } from './iommu.js';
import { IOMMU_PAGE, PERM_READ, PERM_WRITE } from './iommu.js';
import type { PhysicalMemory, PhysRegion } from './memory.js';
import { SimError } from './errors.js';

/** What the DMA engine needs from its function. */
export interface DmaRequester {
  /** PCI address, `0000:00:01.0`. */
  readonly address: string;
  /** Command register bit 2 (PCI Local Bus 3.0 §6.2.2): without it the function issues no DMA. */
  readonly busMasterEnabled: boolean;
}

/** Up to this many bytes a plain loop beats subarray()+set() (measured: 64 B by loop ~2x slower). */
const COPY_LOOP_MAX = 16;

export class DeviceDma {
  private readonly fn: DmaRequester;
  private readonly iommu: SimIommu;
  private readonly domain: IommuDomain;
  private readonly mem: PhysicalMemory;
  private readonly passthrough: boolean;
  /** Transfers refused (any reason) by this engine. */
  refused = 0;

  constructor(fn: DmaRequester, iommu: SimIommu, domain: IommuDomain, mem: PhysicalMemory) {
    this.fn = fn;
    this.iommu = iommu;
    this.domain = domain;
    this.mem = mem;
    this.passthrough = iommu.passthrough;
  }

  /** Copy `len` bytes at `iova` into `dst[off..]`. False (and a logged fault) when refused. */
  read(iova: number, dst: Uint8Array, off: number, len: number): boolean {
    if (!isDeviceAddress(iova)) return this.refuse(iova, len, 'read', 'not-present');
    if (!this.args(dst, off, len)) return true;
    if ((iova % IOMMU_PAGE) + len <= IOMMU_PAGE) {
      // Fast path: inside one page.
      const r = this.one(iova, len, PERM_READ, 'read');
      if (r === undefined) return false;
      const at = this.at;
      if (len <= COPY_LOOP_MAX) {
        const src = r.bytes;
        for (let i = 0; i < len; i++) dst[off + i] = src[at + i]!;
      } else {
        dst.set(r.bytes.subarray(at, at + len), off);
      }
      return true;
    }
    if (!this.allowed(iova, len, PERM_READ, 'read')) return false;
    let done = 0;
    while (done < len) {
      const pos = iova + done;
      const phys = this.phys(pos);
      const chunk = this.run(pos, phys, len - done);
      const r = this.mem.find(phys, chunk)!;
      const at = phys - r.base;
      if (chunk <= COPY_LOOP_MAX) {
        const src = r.bytes;
        for (let i = 0; i < chunk; i++) dst[off + done + i] = src[at + i]!;
      } else {
        dst.set(r.bytes.subarray(at, at + chunk), off + done);
      }
      done += chunk;
    }
    return true;
  }

  /** Copy `len` bytes from `src[off..]` to `iova`. False (and a logged fault) when refused. */
  write(iova: number, src: Uint8Array, off: number, len: number): boolean {
    if (!isDeviceAddress(iova)) return this.refuse(iova, len, 'write', 'not-present');
    if (!this.args(src, off, len)) return true;
    if ((iova % IOMMU_PAGE) + len <= IOMMU_PAGE) {
      const r = this.one(iova, len, PERM_WRITE, 'write');
      if (r === undefined) return false;
      const at = this.at;
      if (len <= COPY_LOOP_MAX) {
        const d = r.bytes;
        for (let i = 0; i < len; i++) d[at + i] = src[off + i]!;
      } else {
        r.bytes.set(src.subarray(off, off + len), at);
      }
      return true;
    }
    if (!this.allowed(iova, len, PERM_WRITE, 'write')) return false;
    let done = 0;
    while (done < len) {
      const pos = iova + done;
      const phys = this.phys(pos);
      const chunk = this.run(pos, phys, len - done);
      const r = this.mem.find(phys, chunk)!;
      const at = phys - r.base;
      if (chunk <= COPY_LOOP_MAX) {
        const dstb = r.bytes;
        for (let i = 0; i < chunk; i++) dstb[at + i] = src[off + done + i]!;
      } else {
        r.bytes.set(src.subarray(off + done, off + done + chunk), at);
      }
      done += chunk;
    }
    return true;
  }

  /** A little-endian 32-bit value at `iova`, or -1 when refused. */
  readU32(iova: number): number {
    const view = this.single(iova, 4, PERM_READ, 'read');
    if (view === undefined) return -1;
    return view.getUint32(this.at, true);
  }

  /** A little-endian 64-bit value at `iova` as a number (exact below 2^53: addresses, PRP entries), or -1 when refused. */
  readU64(iova: number): number {
    const view = this.single(iova, 8, PERM_READ, 'read');
    if (view === undefined) return -1;
    return view.getUint32(this.at, true) + view.getUint32(this.at + 4, true) * 0x1_0000_0000;
  }

  /** Write a little-endian 32-bit value at `iova`. False when refused. */
  writeU32(iova: number, value: number): boolean {
    if (iova % IOMMU_PAGE > IOMMU_PAGE - 4) {
      this.bounceView.setUint32(0, value >>> 0, true);
      return this.write(iova, this.bounce, 0, 4);
    }
    const r = this.one(iova, 4, PERM_WRITE, 'write');
    if (r === undefined) return false;
    r.view.setUint32(this.at, value >>> 0, true);
    return true;
  }

  /** Write a 64-bit value given as two 32-bit halves. False when refused. */
  writeU64(iova: number, lo: number, hi: number): boolean {
    if (iova % IOMMU_PAGE > IOMMU_PAGE - 8) {
      this.bounceView.setUint32(0, lo >>> 0, true);
      this.bounceView.setUint32(4, hi >>> 0, true);
      return this.write(iova, this.bounce, 0, 8);
    }
    const r = this.one(iova, 8, PERM_WRITE, 'write');
    if (r === undefined) return false;
    r.view.setUint32(this.at, lo >>> 0, true);
    r.view.setUint32(this.at + 4, hi >>> 0, true);
    return true;
  }

  /** Offset into the view `single` returned. Set by `single`, read right after. */
  private at = 0;

  /** A small read that may cross a page: the view to read from, with `this.at` set. */
  private single(iova: number, len: number, need: number, access: DmaAccess): DataView | undefined {
    if ((iova % IOMMU_PAGE) + len <= IOMMU_PAGE) return this.one(iova, len, need, access)?.view;
    // Crosses a page boundary: gather through a small buffer (the pages may be physically apart).
    if (!this.read(iova, this.bounce, 0, len)) return undefined;
    this.at = 0;
    return this.bounceView;
  }

  private readonly bounce = new Uint8Array(8);
  private readonly bounceView = new DataView(this.bounce.buffer);

  /**
   * Check and translate a transfer inside one page: the region holding it, with `this.at` set to
   * the offset there, or undefined (fault logged).
   */
  private one(iova: number, len: number, need: number, access: DmaAccess): PhysRegion | undefined {
    if (!this.fn.busMasterEnabled) {
      this.refuse(iova, len, access, 'no-bus-master');
      return undefined;
    }
    let phys = iova;
    if (!this.passthrough) {
      const page = Math.floor(iova / IOMMU_PAGE);
      const e = this.domain.lookup(page);
      if (e < 0) {
        this.refuse(iova, len, access, 'not-present');
        return undefined;
      }
      if ((e & need) === 0) {
        this.refuse(iova, len, access, need === PERM_READ ? 'no-read' : 'no-write');
        return undefined;
      }
      // e = physPage * 4 + perm, so physPage * 4096 = (e - perm) * 1024.
      phys = (e - (e & 3)) * 1024 + (iova - page * IOMMU_PAGE);
    }
    const r = this.mem.find(phys, len);
    if (r === undefined) {
      this.refuse(iova, len, access, 'unbacked');
      return undefined;
    }
    this.at = phys - r.base;
    return r;
  }

  /** The model's own buffer arguments: a bad one is a bug in the model, so it throws. */
  private args(buf: Uint8Array, off: number, len: number): boolean {
    if (!Number.isInteger(off) || off < 0 || !Number.isInteger(len) || len < 0 || off + len > buf.length) {
      throw new SimError('ERR_SIM_ARG', `DMA off ${off} len ${len}: bad arguments for a buffer of ${buf.length} bytes`, {
        fix: 'off + len within the buffer',
      });
    }
    return len > 0;
  }

  /** Check the whole range: bus master, every page present with `need`, every page backed. */
  private allowed(iova: number, len: number, need: number, access: DmaAccess): boolean {
    if (!this.fn.busMasterEnabled) return this.refuse(iova, len, access, 'no-bus-master');
    const last = iova + len - 1;
    const lastPage = Math.floor(last / IOMMU_PAGE);
    for (let page = Math.floor(iova / IOMMU_PAGE); page <= lastPage; page++) {
      let physPage: number;
      if (this.passthrough) {
        physPage = page;
      } else {
        const e = this.domain.lookup(page);
        if (e < 0) return this.refuse(iova, len, access, 'not-present');
        if ((e & need) === 0) return this.refuse(iova, len, access, need === PERM_READ ? 'no-read' : 'no-write');
        physPage = Math.floor(e / 4);
      }
      const from = Math.max(iova, page * IOMMU_PAGE);
      const to = Math.min(last + 1, (page + 1) * IOMMU_PAGE);
      if (this.mem.find(physPage * IOMMU_PAGE + (from - page * IOMMU_PAGE), to - from) === undefined) {
        return this.refuse(iova, len, access, 'unbacked');
      }
    }
    return true;
  }

  private refuse(iova: number, len: number, access: DmaAccess, reason: FaultReason): false {
    this.refused++;
    this.iommu.recordFault(this.fn.address, iova, len, access, reason);
    return false;
  }

  /** Physical address of an IOVA already checked by `allowed`. */
  private phys(iova: number): number {
    if (this.passthrough) return iova;
    const page = Math.floor(iova / IOMMU_PAGE);
    return Math.floor(this.domain.lookup(page) / 4) * IOMMU_PAGE + (iova - page * IOMMU_PAGE);
  }

  /** How many bytes from `pos` (at `phys`) are physically contiguous in one region, up to `max`. */
  private run(pos: number, phys: number, max: number): number {
    let chunk = Math.min(max, IOMMU_PAGE - (pos % IOMMU_PAGE));
    const r = this.mem.find(phys, chunk)!;
    const end = r.base + r.size;
    while (chunk < max) {
      const next = Math.min(max - chunk, IOMMU_PAGE);
      if (this.phys(pos + chunk) !== phys + chunk || phys + chunk + next > end) break;
      chunk += next;
    }
    return chunk;
  }
}

/**
 * An IOVA the driver (possibly hostile) handed the device: anything that is not an exact
 * non-negative integer (2^53 and above lose precision as numbers) is outside every mapping, so it
 * is refused and logged as not present, as a real IOMMU refuses an address beyond its width. It
 * must never throw: the model runs in the manager, and a driver must not be able to crash it.
 */
function isDeviceAddress(iova: number): boolean {
  return Number.isSafeInteger(iova) && iova >= 0;
}
