/**
 * Simulated physical memory: an address space made of regions, each a Uint8Array at a physical base.
 *
 * The simulated IOMMU translates IOVA -> physical, and this class turns physical -> bytes. DMA
 * window memory is registered here as 'ram' regions; tests register 'canary' regions that no
 * window maps, filled with a pattern, to prove that blocked DMA never touched them (the oracle the
 * fault campaigns use). Physical addresses are `number`s: exact below 2^53, which the simulator
 * never approaches (bases are handed out from 4 GiB upwards, page-aligned, with a guard page
 * between regions so an off-by-one run never lands in a neighbour).
 */
import { SimError } from './errors.js';

export type RegionKind = 'ram' | 'canary';

export interface PhysRegion {
  readonly base: number;
  readonly size: number;
  readonly bytes: Uint8Array;
  /** A little-endian view over `bytes` for the device-side fast paths. */
  readonly view: DataView;
  readonly name: string;
  readonly kind: RegionKind;
  /** For a canary: the byte it was filled with. */
  readonly pattern: number;
}

const PAGE = 4096;
const FIRST_BASE = 0x1_0000_0000;

export class PhysicalMemory {
  /** Regions sorted by base. */
  private regions: PhysRegion[] = [];
  private byBytes = new WeakMap<Uint8Array, PhysRegion>();
  private nextBase = FIRST_BASE;
  /** The last region found: consecutive DMA mostly hits the same one. */
  private last: PhysRegion | undefined;

  /** Register `bytes` at a fresh page-aligned physical base (or at `base`, which must not overlap). */
  add(bytes: Uint8Array, name: string, options: { base?: number; kind?: RegionKind; pattern?: number } = {}): PhysRegion {
    const size = bytes.byteLength;
    if (size === 0) throw new SimError('ERR_SIM_ARG', `physical region ${name}: empty`, { fix: 'register at least one byte' });
    let base = options.base;
    if (base === undefined) {
      base = this.nextBase;
      this.nextBase += Math.ceil(size / PAGE) * PAGE + PAGE;
    } else if (!Number.isSafeInteger(base) || base < 0) {
      throw new SimError('ERR_SIM_ARG', `physical region ${name}: base ${base} is not a non-negative integer`);
    }
    for (const r of this.regions) {
      if (base < r.base + r.size && r.base < base + size) {
        throw new SimError(
          'ERR_SIM_ARG',
          `physical region ${name} [0x${base.toString(16)}, +0x${size.toString(16)}) overlaps ${r.name} at 0x${r.base.toString(16)}`,
          {
            fix: 'leave `base` out to get a free address',
          },
        );
      }
    }
    if (base + size > this.nextBase) this.nextBase = Math.ceil((base + size) / PAGE) * PAGE + PAGE;
    const view = new DataView(bytes.buffer, bytes.byteOffset, bytes.byteLength);
    const region: PhysRegion = { base, size, bytes, view, name, kind: options.kind ?? 'ram', pattern: options.pattern ?? 0 };
    this.regions.push(region);
    this.regions.sort((a, b) => a.base - b.base);
    this.byBytes.set(bytes, region);
    return region;
  }

  /** A host region no window maps, filled with `pattern`: check it with `intact()` after a campaign. */
  canary(size: number, name = 'canary', pattern = 0xa5): PhysRegion {
    const bytes = new Uint8Array(size).fill(pattern);
    return this.add(bytes, name, { kind: 'canary', pattern });
  }

  /** True when every byte of a canary still holds its pattern. */
  intact(region: PhysRegion): boolean {
    const p = region.pattern;
    const b = region.bytes;
    for (let i = 0; i < b.length; i++) if (b[i] !== p) return false;
    return true;
  }

  /** Every canary region whose bytes changed (empty: the oracle holds). */
  damagedCanaries(): PhysRegion[] {
    return this.regions.filter((r) => r.kind === 'canary' && !this.intact(r));
  }

  remove(region: PhysRegion): void {
    const i = this.regions.indexOf(region);
    if (i < 0) throw new SimError('ERR_SIM_ARG', `physical region ${region.name} is not registered`);
    this.regions.splice(i, 1);
    this.byBytes.delete(region.bytes);
    if (this.last === region) this.last = undefined;
  }

  /** The region registered for exactly these bytes. */
  regionOf(bytes: Uint8Array): PhysRegion | undefined {
    return this.byBytes.get(bytes);
  }

  /** The region holding all of [phys, phys + len), or undefined when none does. */
  find(phys: number, len: number): PhysRegion | undefined {
    const last = this.last;
    if (last !== undefined && phys >= last.base && phys + len <= last.base + last.size) return last;
    const rs = this.regions;
    let lo = 0,
      hi = rs.length - 1;
    while (lo <= hi) {
      const mid = (lo + hi) >> 1;
      const r = rs[mid]!;
      if (phys < r.base) hi = mid - 1;
      else if (phys >= r.base + r.size) lo = mid + 1;
      else {
        if (phys + len > r.base + r.size) return undefined;
        this.last = r;
        return r;
      }
    }
    return undefined;
  }

  list(): readonly PhysRegion[] {
    return this.regions;
  }
}
