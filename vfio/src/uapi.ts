/**
 * The VFIO user API (include/uapi/linux/vfio.h, kernel 6.1): ioctl numbers, constants, struct
 * layouts, and encoders/decoders over DataViews. Every number here is checked against the machine's
 * header by test/vfio/uapi-layout.test.ts (gcc compiles a probe): the tables below are what that
 * test walks, so anything used here must be in them.
 */
import { registerIoctlNames } from 'linux-sys';
import { VfioCode, VfioError } from './errors.js';

/** `VFIO_TYPE` (';') and `VFIO_BASE`: every VFIO ioctl is `_IO(VFIO_TYPE, VFIO_BASE + n)`. */
export const VFIO_TYPE = 0x3b;
export const VFIO_BASE = 100;

/** `_IO(type, nr)` (asm-generic/ioctl.h): direction 0 and size 0, so just `type << 8 | nr`. */
export function _IO(type: number, nr: number): number {
  return ((type & 0xff) << 8) | (nr & 0xff);
}

/** ioctl numbers, by their header names. */
export const IOCTL = Object.freeze({
  VFIO_GET_API_VERSION: _IO(VFIO_TYPE, VFIO_BASE + 0),
  VFIO_CHECK_EXTENSION: _IO(VFIO_TYPE, VFIO_BASE + 1),
  VFIO_SET_IOMMU: _IO(VFIO_TYPE, VFIO_BASE + 2),
  VFIO_GROUP_GET_STATUS: _IO(VFIO_TYPE, VFIO_BASE + 3),
  VFIO_GROUP_SET_CONTAINER: _IO(VFIO_TYPE, VFIO_BASE + 4),
  VFIO_GROUP_UNSET_CONTAINER: _IO(VFIO_TYPE, VFIO_BASE + 5),
  VFIO_GROUP_GET_DEVICE_FD: _IO(VFIO_TYPE, VFIO_BASE + 6),
  VFIO_DEVICE_GET_INFO: _IO(VFIO_TYPE, VFIO_BASE + 7),
  VFIO_DEVICE_GET_REGION_INFO: _IO(VFIO_TYPE, VFIO_BASE + 8),
  VFIO_DEVICE_GET_IRQ_INFO: _IO(VFIO_TYPE, VFIO_BASE + 9),
  VFIO_DEVICE_SET_IRQS: _IO(VFIO_TYPE, VFIO_BASE + 10),
  VFIO_DEVICE_RESET: _IO(VFIO_TYPE, VFIO_BASE + 11),
  VFIO_IOMMU_GET_INFO: _IO(VFIO_TYPE, VFIO_BASE + 12),
  VFIO_IOMMU_MAP_DMA: _IO(VFIO_TYPE, VFIO_BASE + 13),
  VFIO_IOMMU_UNMAP_DMA: _IO(VFIO_TYPE, VFIO_BASE + 14),
} as const);

// Error messages of the seam name these ioctls (`ioctl VFIO_IOMMU_MAP_DMA on fd 7`).
registerIoctlNames(IOCTL);

/** `VFIO_IOMMU_MAP_DMA` for 0x3b71; hex for a number nobody registered. */
export { ioctlName } from 'linux-sys';

/** Constants, by their header names (flags, extension ids, indexes, capability ids). */
export const VFIO = Object.freeze({
  VFIO_API_VERSION: 0,
  // Extensions / IOMMU types (§ "Extensions" at the top of vfio.h)
  VFIO_TYPE1_IOMMU: 1,
  VFIO_TYPE1v2_IOMMU: 3,
  VFIO_NOIOMMU_IOMMU: 8,
  VFIO_UNMAP_ALL: 9,
  // struct vfio_group_status flags
  VFIO_GROUP_FLAGS_VIABLE: 1 << 0,
  VFIO_GROUP_FLAGS_CONTAINER_SET: 1 << 1,
  // struct vfio_device_info flags
  VFIO_DEVICE_FLAGS_RESET: 1 << 0,
  VFIO_DEVICE_FLAGS_PCI: 1 << 1,
  VFIO_DEVICE_FLAGS_CAPS: 1 << 7,
  // struct vfio_region_info flags and capability ids
  VFIO_REGION_INFO_FLAG_READ: 1 << 0,
  VFIO_REGION_INFO_FLAG_WRITE: 1 << 1,
  VFIO_REGION_INFO_FLAG_MMAP: 1 << 2,
  VFIO_REGION_INFO_FLAG_CAPS: 1 << 3,
  VFIO_REGION_INFO_CAP_SPARSE_MMAP: 1,
  VFIO_REGION_INFO_CAP_TYPE: 2,
  VFIO_REGION_INFO_CAP_MSIX_MAPPABLE: 3,
  // vfio-pci region indexes
  VFIO_PCI_BAR0_REGION_INDEX: 0,
  VFIO_PCI_BAR5_REGION_INDEX: 5,
  VFIO_PCI_ROM_REGION_INDEX: 6,
  VFIO_PCI_CONFIG_REGION_INDEX: 7,
  VFIO_PCI_VGA_REGION_INDEX: 8,
  VFIO_PCI_NUM_REGIONS: 9,
  // vfio-pci IRQ indexes
  VFIO_PCI_INTX_IRQ_INDEX: 0,
  VFIO_PCI_MSI_IRQ_INDEX: 1,
  VFIO_PCI_MSIX_IRQ_INDEX: 2,
  VFIO_PCI_ERR_IRQ_INDEX: 3,
  VFIO_PCI_REQ_IRQ_INDEX: 4,
  VFIO_PCI_NUM_IRQS: 5,
  // struct vfio_irq_info flags
  VFIO_IRQ_INFO_EVENTFD: 1 << 0,
  VFIO_IRQ_INFO_MASKABLE: 1 << 1,
  VFIO_IRQ_INFO_AUTOMASKED: 1 << 2,
  VFIO_IRQ_INFO_NORESIZE: 1 << 3,
  // struct vfio_irq_set flags
  VFIO_IRQ_SET_DATA_NONE: 1 << 0,
  VFIO_IRQ_SET_DATA_BOOL: 1 << 1,
  VFIO_IRQ_SET_DATA_EVENTFD: 1 << 2,
  VFIO_IRQ_SET_ACTION_MASK: 1 << 3,
  VFIO_IRQ_SET_ACTION_UNMASK: 1 << 4,
  VFIO_IRQ_SET_ACTION_TRIGGER: 1 << 5,
  // struct vfio_iommu_type1_info flags and capability ids
  VFIO_IOMMU_INFO_PGSIZES: 1 << 0,
  VFIO_IOMMU_INFO_CAPS: 1 << 1,
  VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE: 1,
  VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL: 3,
  // struct vfio_iommu_type1_dma_map / _unmap flags
  VFIO_DMA_MAP_FLAG_READ: 1 << 0,
  VFIO_DMA_MAP_FLAG_WRITE: 1 << 1,
  VFIO_DMA_UNMAP_FLAG_ALL: 1 << 1,
} as const);

/**
 * Struct sizes and field offsets (x86-64), by C names. `size` is `sizeof`; for structs ending in a
 * flexible array it excludes the array, as in C.
 */
export const LAYOUT = Object.freeze({
  vfio_info_cap_header: { size: 8, fields: { id: 0, version: 2, next: 4 } },
  vfio_group_status: { size: 8, fields: { argsz: 0, flags: 4 } },
  vfio_device_info: { size: 20, fields: { argsz: 0, flags: 4, num_regions: 8, num_irqs: 12, cap_offset: 16 } },
  vfio_region_info: { size: 32, fields: { argsz: 0, flags: 4, index: 8, cap_offset: 12, size: 16, offset: 24 } },
  vfio_region_sparse_mmap_area: { size: 16, fields: { offset: 0, size: 8 } },
  vfio_region_info_cap_sparse_mmap: { size: 16, fields: { header: 0, nr_areas: 8, reserved: 12, areas: 16 } },
  vfio_irq_info: { size: 16, fields: { argsz: 0, flags: 4, index: 8, count: 12 } },
  vfio_irq_set: { size: 20, fields: { argsz: 0, flags: 4, index: 8, start: 12, count: 16, data: 20 } },
  vfio_iommu_type1_info: { size: 24, fields: { argsz: 0, flags: 4, iova_pgsizes: 8, cap_offset: 16 } },
  vfio_iova_range: { size: 16, fields: { start: 0, end: 8 } },
  vfio_iommu_type1_info_cap_iova_range: { size: 16, fields: { header: 0, nr_iovas: 8, reserved: 12, iova_ranges: 16 } },
  vfio_iommu_type1_info_dma_avail: { size: 12, fields: { header: 0, avail: 8 } },
  vfio_iommu_type1_dma_map: { size: 32, fields: { argsz: 0, flags: 4, vaddr: 8, iova: 16, size: 24 } },
  vfio_iommu_type1_dma_unmap: { size: 24, fields: { argsz: 0, flags: 4, iova: 8, size: 16 } },
} as const);

const L = LAYOUT;

function dv(buf: Uint8Array): DataView {
  return new DataView(buf.buffer, buf.byteOffset, buf.byteLength);
}

/** A struct buffer of `size` bytes with `argsz` set, as every VFIO info ioctl wants. */
export function withArgsz(size: number): Uint8Array {
  const b = new Uint8Array(size);
  dv(b).setUint32(0, size, true);
  return b;
}

export function argszOf(buf: Uint8Array): number {
  return dv(buf).getUint32(0, true);
}

// ---- capability chains (struct vfio_info_cap_header) ------------------------------------------

export interface CapHeader {
  id: number;
  version: number;
  /** Offset of this capability within the info buffer. */
  offset: number;
}

/** An info reply whose capability chain does not fit the buffer the kernel filled. */
function badInfo(message: string): VfioError {
  return new VfioError(VfioCode.BAD_INFO, message, {
    op: 'decode VFIO info',
    fix: 'the kernel and these bindings disagree on an info struct: report it with `uname -r` and the message',
  });
}

/** Walk a capability chain starting at `first` (0: none). Bounded: a loop or an out-of-range next stops it with an error. */
export function walkCaps(buf: Uint8Array, first: number): CapHeader[] {
  const v = dv(buf);
  const caps: CapHeader[] = [];
  const h = L.vfio_info_cap_header;
  let off = first;
  while (off !== 0) {
    if (off + h.size > buf.byteLength || caps.length >= 64) {
      throw badInfo(`capability chain broken at offset ${off} (buffer ${buf.byteLength} bytes, ${caps.length} caps read)`);
    }
    caps.push({ id: v.getUint16(off + h.fields.id, true), version: v.getUint16(off + h.fields.version, true), offset: off });
    off = v.getUint32(off + h.fields.next, true);
  }
  return caps;
}

// ---- group ------------------------------------------------------------------------------------

export function decodeGroupStatus(buf: Uint8Array): { flags: number; viable: boolean; containerSet: boolean } {
  const flags = dv(buf).getUint32(L.vfio_group_status.fields.flags, true);
  return { flags, viable: (flags & VFIO.VFIO_GROUP_FLAGS_VIABLE) !== 0, containerSet: (flags & VFIO.VFIO_GROUP_FLAGS_CONTAINER_SET) !== 0 };
}

// ---- device -----------------------------------------------------------------------------------

export interface DeviceInfo {
  flags: number;
  numRegions: number;
  numIrqs: number;
  /** VFIO_DEVICE_FLAGS_RESET */
  canReset: boolean;
  /** VFIO_DEVICE_FLAGS_PCI */
  pci: boolean;
}

export function decodeDeviceInfo(buf: Uint8Array): DeviceInfo {
  const v = dv(buf);
  const f = L.vfio_device_info.fields;
  const flags = v.getUint32(f.flags, true);
  return {
    flags,
    numRegions: v.getUint32(f.num_regions, true),
    numIrqs: v.getUint32(f.num_irqs, true),
    canReset: (flags & VFIO.VFIO_DEVICE_FLAGS_RESET) !== 0,
    pci: (flags & VFIO.VFIO_DEVICE_FLAGS_PCI) !== 0,
  };
}

export function encodeRegionInfo(index: number, argsz: number = L.vfio_region_info.size): Uint8Array {
  const b = withArgsz(argsz);
  dv(b).setUint32(L.vfio_region_info.fields.index, index, true);
  return b;
}

export interface SparseArea {
  offset: bigint;
  size: bigint;
}

export interface RegionInfo {
  index: number;
  flags: number;
  size: bigint;
  /** Offset of the region in the device fd (for pread/pwrite/mmap). */
  offset: bigint;
  read: boolean;
  write: boolean;
  mmap: boolean;
  /** Areas that may be mmapped, when the region has a sparse-mmap capability; undefined: the whole region. */
  sparse: SparseArea[] | undefined;
  /** The ids of every capability in the chain. */
  capIds: number[];
}

export function decodeRegionInfo(buf: Uint8Array): RegionInfo {
  const v = dv(buf);
  const f = L.vfio_region_info.fields;
  const flags = v.getUint32(f.flags, true);
  const capOffset = (flags & VFIO.VFIO_REGION_INFO_FLAG_CAPS) !== 0 ? v.getUint32(f.cap_offset, true) : 0;
  // Only walk the chain when the kernel gave the whole of it (argsz grown to what it asked).
  const caps = capOffset !== 0 && capOffset < buf.byteLength ? walkCaps(buf, capOffset) : [];
  let sparse: SparseArea[] | undefined;
  for (const cap of caps) {
    if (cap.id !== VFIO.VFIO_REGION_INFO_CAP_SPARSE_MMAP) continue;
    const s = L.vfio_region_info_cap_sparse_mmap.fields;
    const a = L.vfio_region_sparse_mmap_area;
    const n = v.getUint32(cap.offset + s.nr_areas, true);
    sparse = [];
    for (let i = 0; i < n; i++) {
      const at = cap.offset + s.areas + i * a.size;
      if (at + a.size > buf.byteLength) throw badInfo(`sparse mmap area ${i} of ${n} lies past the region info buffer`);
      sparse.push({ offset: v.getBigUint64(at + a.fields.offset, true), size: v.getBigUint64(at + a.fields.size, true) });
    }
  }
  return {
    index: v.getUint32(f.index, true),
    flags,
    size: v.getBigUint64(f.size, true),
    offset: v.getBigUint64(f.offset, true),
    read: (flags & VFIO.VFIO_REGION_INFO_FLAG_READ) !== 0,
    write: (flags & VFIO.VFIO_REGION_INFO_FLAG_WRITE) !== 0,
    mmap: (flags & VFIO.VFIO_REGION_INFO_FLAG_MMAP) !== 0,
    sparse,
    capIds: caps.map((c) => c.id),
  };
}

export function encodeIrqInfo(index: number): Uint8Array {
  const b = withArgsz(L.vfio_irq_info.size);
  dv(b).setUint32(L.vfio_irq_info.fields.index, index, true);
  return b;
}

export interface IrqInfo {
  index: number;
  flags: number;
  count: number;
  eventfd: boolean;
  maskable: boolean;
  automasked: boolean;
  noresize: boolean;
}

export function decodeIrqInfo(buf: Uint8Array): IrqInfo {
  const v = dv(buf);
  const f = L.vfio_irq_info.fields;
  const flags = v.getUint32(f.flags, true);
  return {
    index: v.getUint32(f.index, true),
    flags,
    count: v.getUint32(f.count, true),
    eventfd: (flags & VFIO.VFIO_IRQ_INFO_EVENTFD) !== 0,
    maskable: (flags & VFIO.VFIO_IRQ_INFO_MASKABLE) !== 0,
    automasked: (flags & VFIO.VFIO_IRQ_INFO_AUTOMASKED) !== 0,
    noresize: (flags & VFIO.VFIO_IRQ_INFO_NORESIZE) !== 0,
  };
}

/** struct vfio_irq_set with `fds.length` eventfds (s32 each) as data; an fd of -1 detaches that vector. */
export function encodeIrqSetEventfds(index: number, start: number, fds: readonly number[]): Uint8Array {
  const f = L.vfio_irq_set.fields;
  const b = withArgsz(L.vfio_irq_set.size + 4 * fds.length);
  const v = dv(b);
  v.setUint32(f.flags, VFIO.VFIO_IRQ_SET_DATA_EVENTFD | VFIO.VFIO_IRQ_SET_ACTION_TRIGGER, true);
  v.setUint32(f.index, index, true);
  v.setUint32(f.start, start, true);
  v.setUint32(f.count, fds.length, true);
  fds.forEach((fd, i) => v.setInt32(f.data + 4 * i, fd, true));
  return b;
}

/** struct vfio_irq_set with no data: `action` on vectors start..start+count-1 (count 0 + TRIGGER disables the index). */
export function encodeIrqSetNone(index: number, action: number, start: number, count: number): Uint8Array {
  const f = L.vfio_irq_set.fields;
  const b = withArgsz(L.vfio_irq_set.size);
  const v = dv(b);
  v.setUint32(f.flags, VFIO.VFIO_IRQ_SET_DATA_NONE | action, true);
  v.setUint32(f.index, index, true);
  v.setUint32(f.start, start, true);
  v.setUint32(f.count, count, true);
  return b;
}

export interface IrqSet {
  flags: number;
  index: number;
  start: number;
  count: number;
  /** The eventfds, when DATA_EVENTFD. */
  fds: number[];
}

export function decodeIrqSet(buf: Uint8Array): IrqSet {
  const v = dv(buf);
  const f = L.vfio_irq_set.fields;
  const flags = v.getUint32(f.flags, true);
  const count = v.getUint32(f.count, true);
  const fds: number[] = [];
  if (flags & VFIO.VFIO_IRQ_SET_DATA_EVENTFD) {
    for (let i = 0; i < count && f.data + 4 * i + 4 <= buf.byteLength; i++) fds.push(v.getInt32(f.data + 4 * i, true));
  }
  return { flags, index: v.getUint32(f.index, true), start: v.getUint32(f.start, true), count, fds };
}

// ---- IOMMU (type1) ----------------------------------------------------------------------------

export interface IovaRange {
  start: bigint;
  /** Inclusive, as the kernel reports it. */
  end: bigint;
}

export interface IommuInfo {
  flags: number;
  /** VFIO_IOMMU_INFO_PGSIZES: bit n set means pages of 2^n bytes are supported. */
  pageSizeMask: bigint;
  /** The same as a list of sizes, smallest first. */
  pageSizes: bigint[];
  /** Valid IOVA ranges (VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE); undefined when the kernel gives none. */
  iovaRanges: IovaRange[] | undefined;
  /** How many more DMA mappings the container allows (VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL); undefined when not reported. */
  dmaAvailable: number | undefined;
}

export function pageSizesOf(mask: bigint): bigint[] {
  const out: bigint[] = [];
  for (let bit = 0n; bit < 64n; bit++) if ((mask >> bit) & 1n) out.push(1n << bit);
  return out;
}

export function decodeIommuInfo(buf: Uint8Array): IommuInfo {
  const v = dv(buf);
  const f = L.vfio_iommu_type1_info.fields;
  const flags = v.getUint32(f.flags, true);
  const pageSizeMask = (flags & VFIO.VFIO_IOMMU_INFO_PGSIZES) !== 0 ? v.getBigUint64(f.iova_pgsizes, true) : 0n;
  const capOffset = (flags & VFIO.VFIO_IOMMU_INFO_CAPS) !== 0 ? v.getUint32(f.cap_offset, true) : 0;
  const caps = capOffset !== 0 && capOffset < buf.byteLength ? walkCaps(buf, capOffset) : [];
  let iovaRanges: IovaRange[] | undefined;
  let dmaAvailable: number | undefined;
  for (const cap of caps) {
    if (cap.id === VFIO.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE) {
      const c = L.vfio_iommu_type1_info_cap_iova_range.fields;
      const r = L.vfio_iova_range;
      const n = v.getUint32(cap.offset + c.nr_iovas, true);
      iovaRanges = [];
      for (let i = 0; i < n; i++) {
        const at = cap.offset + c.iova_ranges + i * r.size;
        if (at + r.size > buf.byteLength) throw badInfo(`IOVA range ${i} of ${n} lies past the IOMMU info buffer`);
        iovaRanges.push({ start: v.getBigUint64(at + r.fields.start, true), end: v.getBigUint64(at + r.fields.end, true) });
      }
    } else if (cap.id === VFIO.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL) {
      dmaAvailable = v.getUint32(cap.offset + L.vfio_iommu_type1_info_dma_avail.fields.avail, true);
    }
  }
  return { flags, pageSizeMask, pageSizes: pageSizesOf(pageSizeMask), iovaRanges, dmaAvailable };
}

/** Fill a preallocated struct vfio_iommu_type1_dma_map (32 bytes). */
export function encodeDmaMap(buf: Uint8Array, vaddr: bigint, iova: bigint, size: bigint, flags: number): Uint8Array {
  const v = dv(buf);
  const f = L.vfio_iommu_type1_dma_map.fields;
  v.setUint32(f.argsz, L.vfio_iommu_type1_dma_map.size, true);
  v.setUint32(f.flags, flags, true);
  v.setBigUint64(f.vaddr, vaddr, true);
  v.setBigUint64(f.iova, iova, true);
  v.setBigUint64(f.size, size, true);
  return buf;
}

export function decodeDmaMap(buf: Uint8Array): { flags: number; vaddr: bigint; iova: bigint; size: bigint } {
  const v = dv(buf);
  const f = L.vfio_iommu_type1_dma_map.fields;
  return { flags: v.getUint32(f.flags, true), vaddr: v.getBigUint64(f.vaddr, true), iova: v.getBigUint64(f.iova, true), size: v.getBigUint64(f.size, true) };
}

/** Fill a preallocated struct vfio_iommu_type1_dma_unmap (24 bytes). */
export function encodeDmaUnmap(buf: Uint8Array, iova: bigint, size: bigint, flags = 0): Uint8Array {
  const v = dv(buf);
  const f = L.vfio_iommu_type1_dma_unmap.fields;
  v.setUint32(f.argsz, L.vfio_iommu_type1_dma_unmap.size, true);
  v.setUint32(f.flags, flags, true);
  v.setBigUint64(f.iova, iova, true);
  v.setBigUint64(f.size, size, true);
  return buf;
}

export function decodeDmaUnmap(buf: Uint8Array): { flags: number; iova: bigint; size: bigint } {
  const v = dv(buf);
  const f = L.vfio_iommu_type1_dma_unmap.fields;
  return { flags: v.getUint32(f.flags, true), iova: v.getBigUint64(f.iova, true), size: v.getBigUint64(f.size, true) };
}
