/**
 * A fake seam for vfio-bindings' unit tests: implements `Sys` against a tiny model of the kernel.
 * ioctls are dispatched by number, like the kernel does, with the behaviours the package must
 * handle: argsz growth for capability chains, type1v2 map/unmap rules (overlap EEXIST, split
 * EINVAL, unmap of nothing reports size 0), IOVA ranges, memlock (ENOMEM), SET_IOMMU needing a
 * group and interrupt remapping (EPERM), group viability (EPERM) and busy (EBUSY), eventfds that
 * wake pollers, and mmap of BARs and memfds into fake addresses.
 */
import { IOCTL, LAYOUT, VFIO } from 'vfio-bindings';
import { ERRNO, PR_CAPBSET_DROP, PR_CAPBSET_READ, RLIMIT_MEMLOCK, SyscallError, type CapSets, type PollHandle, type Rlimit, type Sys } from 'linux-sys';

const E = ERRNO as Record<string, number>;

function fail(op: string, name: string): never {
  throw new SyscallError(op, E[name]!);
}

export interface FakeRegion {
  size: bigint;
  flags: number;
  /** Sparse-mmap areas (a capability); undefined: none. */
  sparse?: Array<{ offset: bigint; size: bigint }>;
  /** Backing memory of the region (BARs, config). */
  bytes?: ArrayBuffer;
}

export interface FakeDeviceModel {
  regions: FakeRegion[];
  irqCounts: number[];
  resets: number;
  /** eventfd per vector, per IRQ index, as SET_IRQS left them. */
  irqFds: Map<number, number[]>;
  unmasks: number;
}

export interface FakeGroupModel {
  viable: boolean;
  devices: Map<string, FakeDeviceModel>;
  open: boolean;
  container: number | undefined;
  openDevices: number;
}

interface ContainerState {
  groups: Set<number>;
  iommu: number | undefined;
  maps: Array<{ iova: bigint; size: bigint; vaddr: bigint; flags: number }>;
}

type FdEntry =
  | { kind: 'container'; state: ContainerState }
  | { kind: 'group'; group: number }
  | { kind: 'device'; group: number | undefined; model: FakeDeviceModel }
  | { kind: 'eventfd'; counter: bigint; pollers: Set<() => void> }
  | { kind: 'memfd'; bytes: ArrayBuffer };

/** vfio-pci puts region n at offset n << 40 in the device fd (VFIO_PCI_OFFSET_SHIFT). */
export const regionOffset = (index: number): bigint => BigInt(index) << 40n;

export const PAGE_SIZES = 0x40201000n;
export const IOVA_RANGES = [
  { start: 0n, end: 0xfedf_ffffn },
  { start: 0xfef0_0000n, end: (1n << 39n) - 1n },
];

/** A QEMU-NVMe-like device: BAR0 16 KiB mmap-able, config space 4 KiB with ids 1b36:0010, 9 regions, 5 IRQ indexes. */
export function nvmeLikeDevice(): FakeDeviceModel {
  const config = new ArrayBuffer(4096);
  const cv = new DataView(config);
  cv.setUint16(0, 0x1b36, true);
  cv.setUint16(2, 0x0010, true);
  cv.setUint16(4, 0x0002, true); // COMMAND: memory space on
  const bar0 = new ArrayBuffer(0x4000);
  const bv = new DataView(bar0);
  bv.setUint32(0, 0x0f0107ff, true); // CAP low
  bv.setUint32(4, 0x00401820, true); // CAP high
  bv.setUint32(8, 0x00010400, true); // VS 1.4.0
  const rw = VFIO.VFIO_REGION_INFO_FLAG_READ | VFIO.VFIO_REGION_INFO_FLAG_WRITE;
  const regions: FakeRegion[] = [];
  for (let i = 0; i < 9; i++) regions.push({ size: 0n, flags: 0 });
  regions[0] = { size: 0x4000n, flags: rw | VFIO.VFIO_REGION_INFO_FLAG_MMAP, bytes: bar0 };
  regions[4] = { size: 0x1000n, flags: rw, bytes: new ArrayBuffer(0x1000) }; // like an MSI-X BAR without mmap
  regions[7] = { size: 0x1000n, flags: rw, bytes: config };
  return { regions, irqCounts: [1, 1, 65, 1, 1], resets: 0, irqFds: new Map(), unmasks: 0 };
}

export interface FakeOptions {
  vfio?: boolean;
  interruptRemapping?: boolean;
  memlock?: bigint;
  groups?: Record<number, { viable?: boolean; devices: Record<string, FakeDeviceModel> }>;
  /** Paths whose open fails with EACCES. */
  denied?: string[];
}

export class FakeSys implements Sys {
  readonly fds = new Map<number, FdEntry>();
  readonly groups = new Map<number, FakeGroupModel>();
  readonly calls: Array<{ op: string; request?: number; argsz?: number }> = [];
  readonly mappings = new Map<bigint, { bytes: ArrayBuffer; length: number; fd: number; offset: bigint }>();
  vfio: boolean;
  interruptRemapping: boolean;
  memlock: Rlimit;
  pinned = 0n;
  denied: Set<string>;
  prctls: Array<[number, number]> = [];
  /** The calling thread's capability sets (starts as root's full set of 41 capabilities). */
  caps: CapSets = { effective: (1n << 41n) - 1n, permitted: (1n << 41n) - 1n, inheritable: 0n };
  /** The bounding set, read and shrunk through prctl PR_CAPBSET_READ / PR_CAPBSET_DROP. */
  bounding = (1n << 41n) - 1n;
  seccomps: Array<{ operation: number; flags: number; program: Uint8Array }> = [];
  private nextFd = 3;
  private nextAddr = 0x7f00_0000_0000n;

  constructor(o: FakeOptions = {}) {
    this.vfio = o.vfio ?? true;
    this.interruptRemapping = o.interruptRemapping ?? true;
    const lim = o.memlock ?? 1n << 30n;
    this.memlock = { cur: lim, max: lim };
    this.denied = new Set(o.denied ?? []);
    for (const [n, g] of Object.entries(o.groups ?? { 1: { devices: { '0000:00:01.0': nvmeLikeDevice() } } })) {
      this.groups.set(Number(n), { viable: g.viable ?? true, devices: new Map(Object.entries(g.devices)), open: false, container: undefined, openDevices: 0 });
    }
  }

  /** A device model by address, for assertions. */
  model(address: string): FakeDeviceModel {
    for (const g of this.groups.values()) {
      const d = g.devices.get(address);
      if (d) return d;
    }
    throw new Error(`fake: no device ${address}`);
  }

  /** Raise vector `vector` of IRQ index `index` on a device: its eventfd counter goes up by one. */
  fire(address: string, index: number, vector: number): void {
    const fd = this.model(address).irqFds.get(index)?.[vector];
    if (fd === undefined || fd < 0) throw new Error(`fake: vector ${index}/${vector} of ${address} is not routed`);
    this.eventfdWrite(fd, 1n);
  }

  openFdCount(): number {
    return this.fds.size;
  }

  private alloc(entry: FdEntry): number {
    const fd = this.nextFd++;
    this.fds.set(fd, entry);
    return fd;
  }

  private entry(fd: number, op: string): FdEntry {
    const e = this.fds.get(fd);
    if (!e) fail(op, 'EBADF');
    return e;
  }

  open(path: string, _flags: number): number {
    this.calls.push({ op: `open ${path}` });
    if (this.denied.has(path)) fail(`open ${path}`, 'EACCES');
    if (path === '/dev/vfio/vfio') {
      if (!this.vfio) fail(`open ${path}`, 'ENOENT');
      return this.alloc({ kind: 'container', state: { groups: new Set(), iommu: undefined, maps: [] } });
    }
    const m = /^\/dev\/vfio\/(\d+)$/.exec(path);
    if (m && this.vfio) {
      const n = Number(m[1]);
      const g = this.groups.get(n);
      if (!g) fail(`open ${path}`, 'ENOENT');
      if (g.open) fail(`open ${path}`, 'EBUSY');
      g.open = true;
      return this.alloc({ kind: 'group', group: n });
    }
    fail(`open ${path}`, 'ENOENT');
  }

  close(fd: number): void {
    const e = this.entry(fd, `close ${fd}`);
    this.fds.delete(fd);
    if (e.kind === 'group') {
      const g = this.groups.get(e.group)!;
      g.open = false;
      if (g.container !== undefined) this.detach(e.group);
    } else if (e.kind === 'device' && e.group !== undefined) {
      this.groups.get(e.group)!.openDevices--;
    } else if (e.kind === 'eventfd') {
      e.pollers.clear();
    } else if (e.kind === 'container') {
      for (const g of [...e.state.groups]) this.detach(g);
    }
  }

  private containerOf(fd: number): ContainerState | undefined {
    const e = this.fds.get(fd);
    return e?.kind === 'container' ? e.state : undefined;
  }

  private detach(group: number): void {
    const g = this.groups.get(group)!;
    const c = g.container !== undefined ? this.containerOf(g.container) : undefined;
    g.container = undefined;
    if (!c) return;
    c.groups.delete(group);
    if (c.groups.size === 0) {
      // The kernel resets the container's IOMMU when its last group leaves: mappings go.
      for (const m of c.maps) this.pinned -= m.size;
      c.maps = [];
      c.iommu = undefined;
    }
  }

  ioctl(fd: number, request: number, arg?: Uint8Array | number): number {
    const buf = arg instanceof Uint8Array ? arg : undefined;
    const v = buf ? new DataView(buf.buffer, buf.byteOffset, buf.byteLength) : undefined;
    this.calls.push({ op: 'ioctl', request, ...(v && buf!.byteLength >= 4 ? { argsz: v.getUint32(0, true) } : {}) });
    const e = this.entry(fd, `ioctl ${request}`);
    const op = `ioctl 0x${request.toString(16)}`;
    if (e.kind === 'container') return this.containerIoctl(e.state, request, arg, v, op);
    if (e.kind === 'group') return this.groupIoctl(e.group, request, v, buf, op);
    if (e.kind === 'device') return this.deviceIoctl(e.model, request, v, buf, op);
    fail(op, 'ENOTTY');
  }

  private containerIoctl(c: ContainerState, request: number, arg: Uint8Array | number | undefined, v: DataView | undefined, op: string): number {
    switch (request) {
      case IOCTL.VFIO_GET_API_VERSION:
        return 0;
      case IOCTL.VFIO_CHECK_EXTENSION:
        return arg === VFIO.VFIO_TYPE1_IOMMU || arg === VFIO.VFIO_TYPE1v2_IOMMU ? 1 : 0;
      case IOCTL.VFIO_SET_IOMMU:
        if (c.groups.size === 0 || c.iommu !== undefined) fail(op, 'EINVAL');
        if (arg !== VFIO.VFIO_TYPE1_IOMMU && arg !== VFIO.VFIO_TYPE1v2_IOMMU) fail(op, 'EINVAL');
        if (!this.interruptRemapping) fail(op, 'EPERM');
        c.iommu = arg;
        return 0;
      case IOCTL.VFIO_IOMMU_GET_INFO: {
        if (c.iommu === undefined || !v) fail(op, 'EINVAL');
        const L = LAYOUT.vfio_iommu_type1_info;
        if (v.getUint32(0, true) < L.size) fail(op, 'EINVAL');
        const iovaCap = 16 + 16 * IOVA_RANGES.length;
        const needed = L.size + iovaCap + 12;
        v.setUint32(L.fields.flags, VFIO.VFIO_IOMMU_INFO_PGSIZES | VFIO.VFIO_IOMMU_INFO_CAPS, true);
        v.setBigUint64(L.fields.iova_pgsizes, PAGE_SIZES, true);
        if (v.getUint32(0, true) < needed) {
          v.setUint32(0, needed, true);
          v.setUint32(L.fields.cap_offset, 0, true);
          return 0;
        }
        v.setUint32(L.fields.cap_offset, L.size, true);
        let at = L.size;
        v.setUint16(at, VFIO.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, true);
        v.setUint16(at + 2, 1, true);
        v.setUint32(at + 4, at + iovaCap, true);
        v.setUint32(at + 8, IOVA_RANGES.length, true);
        IOVA_RANGES.forEach((r, i) => {
          v.setBigUint64(at + 16 + 16 * i, r.start, true);
          v.setBigUint64(at + 24 + 16 * i, r.end, true);
        });
        at += iovaCap;
        v.setUint16(at, VFIO.VFIO_IOMMU_TYPE1_INFO_DMA_AVAIL, true);
        v.setUint16(at + 2, 1, true);
        v.setUint32(at + 4, 0, true);
        v.setUint32(at + 8, 65535 - c.maps.length, true);
        return 0;
      }
      case IOCTL.VFIO_IOMMU_MAP_DMA: {
        if (c.iommu === undefined || !v) fail(op, 'EINVAL');
        const f = LAYOUT.vfio_iommu_type1_dma_map.fields;
        const flags = v.getUint32(f.flags, true);
        const vaddr = v.getBigUint64(f.vaddr, true);
        const iova = v.getBigUint64(f.iova, true);
        const size = v.getBigUint64(f.size, true);
        const mask = 0xfffn;
        if ((flags & 3) === 0 || size === 0n || ((vaddr | iova | size) & mask) !== 0n) fail(op, 'EINVAL');
        if (!IOVA_RANGES.some((r) => iova >= r.start && iova + size - 1n <= r.end)) fail(op, 'EINVAL');
        if (c.maps.some((m) => iova < m.iova + m.size && m.iova < iova + size)) fail(op, 'EEXIST');
        if (![...this.mappings.entries()].some(([a, m]) => vaddr >= a && vaddr + size <= a + BigInt(m.length))) fail(op, 'EFAULT');
        if (this.pinned + size > this.memlock.cur) fail(op, 'ENOMEM');
        this.pinned += size;
        c.maps.push({ iova, size, vaddr, flags });
        return 0;
      }
      case IOCTL.VFIO_IOMMU_UNMAP_DMA: {
        if (c.iommu === undefined || !v) fail(op, 'EINVAL');
        const f = LAYOUT.vfio_iommu_type1_dma_unmap.fields;
        const iova = v.getBigUint64(f.iova, true);
        const size = v.getBigUint64(f.size, true);
        if (((iova | size) & 0xfffn) !== 0n || size === 0n) fail(op, 'EINVAL');
        // type1v2: refusing to split a mapping at either end.
        const end = iova + size;
        if (c.maps.some((m) => (m.iova < iova && iova < m.iova + m.size) || (m.iova < end && end < m.iova + m.size))) fail(op, 'EINVAL');
        let unmapped = 0n;
        c.maps = c.maps.filter((m) => {
          const inside = m.iova >= iova && m.iova + m.size <= end;
          if (inside) unmapped += m.size;
          return !inside;
        });
        this.pinned -= unmapped;
        v.setBigUint64(f.size, unmapped, true);
        return 0;
      }
      default:
        fail(op, 'ENOTTY');
    }
  }

  private groupIoctl(n: number, request: number, v: DataView | undefined, buf: Uint8Array | undefined, op: string): number {
    const g = this.groups.get(n)!;
    switch (request) {
      case IOCTL.VFIO_GROUP_GET_STATUS:
        if (!v) fail(op, 'EFAULT');
        v.setUint32(4, (g.viable ? VFIO.VFIO_GROUP_FLAGS_VIABLE : 0) | (g.container !== undefined ? VFIO.VFIO_GROUP_FLAGS_CONTAINER_SET : 0), true);
        return 0;
      case IOCTL.VFIO_GROUP_SET_CONTAINER: {
        if (!v) fail(op, 'EFAULT');
        if (g.container !== undefined) fail(op, 'EBUSY');
        if (!g.viable) fail(op, 'EPERM');
        const cfd = v.getInt32(0, true);
        const c = this.containerOf(cfd);
        if (!c) fail(op, 'EBADF');
        g.container = cfd;
        c.groups.add(n);
        return 0;
      }
      case IOCTL.VFIO_GROUP_UNSET_CONTAINER:
        if (g.container === undefined) fail(op, 'EINVAL');
        if (g.openDevices > 0) fail(op, 'EBUSY');
        this.detach(n);
        return 0;
      case IOCTL.VFIO_GROUP_GET_DEVICE_FD: {
        if (!buf) fail(op, 'EFAULT');
        const c = g.container !== undefined ? this.containerOf(g.container) : undefined;
        if (!c || c.iommu === undefined) fail(op, 'EINVAL');
        const name = new TextDecoder().decode(buf.subarray(0, buf.indexOf(0)));
        const model = g.devices.get(name);
        if (!model) fail(op, 'ENODEV');
        g.openDevices++;
        return this.alloc({ kind: 'device', group: n, model });
      }
      default:
        fail(op, 'ENOTTY');
    }
  }

  private deviceIoctl(d: FakeDeviceModel, request: number, v: DataView | undefined, buf: Uint8Array | undefined, op: string): number {
    switch (request) {
      case IOCTL.VFIO_DEVICE_GET_INFO: {
        if (!v || v.getUint32(0, true) < LAYOUT.vfio_device_info.size) fail(op, 'EINVAL');
        const f = LAYOUT.vfio_device_info.fields;
        v.setUint32(f.flags, VFIO.VFIO_DEVICE_FLAGS_PCI | VFIO.VFIO_DEVICE_FLAGS_RESET, true);
        v.setUint32(f.num_regions, d.regions.length, true);
        v.setUint32(f.num_irqs, d.irqCounts.length, true);
        return 0;
      }
      case IOCTL.VFIO_DEVICE_GET_REGION_INFO: {
        const L = LAYOUT.vfio_region_info;
        if (!v || v.getUint32(0, true) < L.size) fail(op, 'EINVAL');
        const index = v.getUint32(L.fields.index, true);
        const r = d.regions[index];
        if (!r) fail(op, 'EINVAL');
        let flags = r.flags;
        v.setBigUint64(L.fields.size, r.size, true);
        v.setBigUint64(L.fields.offset, regionOffset(index), true);
        v.setUint32(L.fields.cap_offset, 0, true);
        if (r.sparse) {
          flags |= VFIO.VFIO_REGION_INFO_FLAG_CAPS;
          const needed = L.size + 16 + 16 * r.sparse.length;
          if (v.getUint32(0, true) < needed) {
            v.setUint32(0, needed, true);
          } else {
            v.setUint32(L.fields.cap_offset, L.size, true);
            const at = L.size;
            v.setUint16(at, VFIO.VFIO_REGION_INFO_CAP_SPARSE_MMAP, true);
            v.setUint16(at + 2, 1, true);
            v.setUint32(at + 4, 0, true);
            v.setUint32(at + 8, r.sparse.length, true);
            r.sparse.forEach((a, i) => {
              v.setBigUint64(at + 16 + 16 * i, a.offset, true);
              v.setBigUint64(at + 24 + 16 * i, a.size, true);
            });
          }
        }
        v.setUint32(L.fields.flags, flags, true);
        return 0;
      }
      case IOCTL.VFIO_DEVICE_GET_IRQ_INFO: {
        const f = LAYOUT.vfio_irq_info.fields;
        if (!v) fail(op, 'EFAULT');
        const index = v.getUint32(f.index, true);
        const count = d.irqCounts[index];
        if (count === undefined) fail(op, 'EINVAL');
        const flags =
          VFIO.VFIO_IRQ_INFO_EVENTFD |
          (index === VFIO.VFIO_PCI_INTX_IRQ_INDEX ? VFIO.VFIO_IRQ_INFO_MASKABLE | VFIO.VFIO_IRQ_INFO_AUTOMASKED : VFIO.VFIO_IRQ_INFO_NORESIZE);
        v.setUint32(f.flags, flags, true);
        v.setUint32(f.count, count, true);
        return 0;
      }
      case IOCTL.VFIO_DEVICE_SET_IRQS: {
        const f = LAYOUT.vfio_irq_set.fields;
        if (!v || !buf) fail(op, 'EFAULT');
        const flags = v.getUint32(f.flags, true);
        const index = v.getUint32(f.index, true);
        const start = v.getUint32(f.start, true);
        const count = v.getUint32(f.count, true);
        const max = d.irqCounts[index];
        if (max === undefined || start + count > max) fail(op, 'EINVAL');
        if (flags & VFIO.VFIO_IRQ_SET_ACTION_UNMASK) {
          d.unmasks++;
          return 0;
        }
        if (flags & VFIO.VFIO_IRQ_SET_DATA_NONE && count === 0) {
          d.irqFds.delete(index);
          return 0;
        }
        if (flags & VFIO.VFIO_IRQ_SET_DATA_EVENTFD) {
          if (v.getUint32(0, true) < f.data + 4 * count) fail(op, 'EINVAL');
          const fds: number[] = [];
          for (let i = 0; i < count; i++) {
            const efd = v.getInt32(f.data + 4 * i, true);
            if (efd >= 0 && this.fds.get(efd)?.kind !== 'eventfd') fail(op, 'EBADF');
            fds.push(efd);
          }
          d.irqFds.set(index, fds);
          return 0;
        }
        return fail(op, 'EINVAL');
      }
      case IOCTL.VFIO_DEVICE_RESET:
        d.resets++;
        return 0;
      default:
        fail(op, 'ENOTTY');
    }
  }

  mmap(_addr: bigint, length: number, _prot: number, _flags: number, fd: number, offset: bigint): bigint {
    const op = `mmap fd ${fd}`;
    let bytes: ArrayBuffer;
    if (fd === -1) bytes = new ArrayBuffer(length);
    else {
      const e = this.entry(fd, op);
      if (e.kind === 'memfd') {
        if (offset + BigInt(length) > BigInt(e.bytes.byteLength)) fail(op, 'EINVAL');
        bytes = offset === 0n && length === e.bytes.byteLength ? e.bytes : new ArrayBuffer(length);
      } else if (e.kind === 'device') {
        const index = Number(offset >> 40n);
        const within = offset - regionOffset(index);
        const r = e.model.regions[index];
        if (!r || !(r.flags & VFIO.VFIO_REGION_INFO_FLAG_MMAP) || !r.bytes) fail(op, 'EINVAL');
        if (r.sparse && !r.sparse.some((a) => within >= a.offset && within + BigInt(length) <= a.offset + a.size)) fail(op, 'EINVAL');
        // The whole BAR aliases the model's memory; an area gets its own buffer (the fake cannot alias a slice).
        bytes = within === 0n && length === r.bytes.byteLength ? r.bytes : new ArrayBuffer(length);
      } else fail(op, 'ENODEV');
    }
    const addr = this.nextAddr;
    this.nextAddr += BigInt(Math.ceil(length / 4096) * 4096 + 4096);
    this.mappings.set(addr, { bytes, length, fd, offset });
    return addr;
  }

  munmap(addr: bigint, _length: number): void {
    if (!this.mappings.delete(addr)) fail('munmap', 'EINVAL');
  }

  memfdCreate(_name: string, _flags: number): number {
    return this.alloc({ kind: 'memfd', bytes: new ArrayBuffer(0) });
  }

  ftruncate(fd: number, length: number): void {
    const e = this.entry(fd, 'ftruncate');
    if (e.kind !== 'memfd') fail('ftruncate', 'EINVAL');
    e.bytes = new ArrayBuffer(length);
  }

  private regionIo(fd: number, buf: Uint8Array, offset: bigint, write: boolean): number {
    const op = write ? 'pwrite' : 'pread';
    const e = this.entry(fd, op);
    if (e.kind !== 'device') fail(op, 'EINVAL');
    const index = Number(offset >> 40n);
    const within = Number(offset - regionOffset(index));
    const r = e.model.regions[index];
    if (!r || !r.bytes) fail(op, 'EINVAL');
    if (within + buf.byteLength > r.bytes.byteLength) fail(op, 'EINVAL');
    const mem = new Uint8Array(r.bytes, within, buf.byteLength);
    if (write) mem.set(buf);
    else buf.set(mem);
    this.calls.push({ op: `${op} ${index}:${within}` });
    return buf.byteLength;
  }

  pread(fd: number, buf: Uint8Array, offset: bigint): number {
    return this.regionIo(fd, buf, offset, false);
  }

  pwrite(fd: number, buf: Uint8Array, offset: bigint): number {
    return this.regionIo(fd, buf, offset, true);
  }

  eventfd(initval: number, _flags: number): number {
    return this.alloc({ kind: 'eventfd', counter: BigInt(initval), pollers: new Set() });
  }

  eventfdRead(fd: number): bigint {
    const e = this.entry(fd, 'read eventfd');
    if (e.kind !== 'eventfd') fail('read eventfd', 'EINVAL');
    const n = e.counter;
    e.counter = 0n;
    return n;
  }

  eventfdWrite(fd: number, value: bigint): void {
    const e = this.entry(fd, 'write eventfd');
    if (e.kind !== 'eventfd') fail('write eventfd', 'EINVAL');
    e.counter += value;
    for (const p of e.pollers) setImmediate(p);
  }

  poll(fd: number, onReadable: () => void): PollHandle {
    const e = this.entry(fd, 'poll');
    if (e.kind !== 'eventfd') fail('poll', 'EINVAL');
    const cb = (): void => {
      if (e.counter > 0n) onReadable();
    };
    e.pollers.add(cb);
    return { close: () => void e.pollers.delete(cb) };
  }

  prctl(option: number, arg2: number): number {
    this.prctls.push([option, arg2]);
    if (option === PR_CAPBSET_READ || option === PR_CAPBSET_DROP) {
      if (!Number.isInteger(arg2) || arg2 < 0 || arg2 > 40) fail('prctl', 'EINVAL');
      const bit = 1n << BigInt(arg2);
      if (option === PR_CAPBSET_READ) return (this.bounding & bit) !== 0n ? 1 : 0;
      if ((this.caps.effective & (1n << 8n)) === 0n) fail('prctl', 'EPERM'); // CAP_SETPCAP
      this.bounding &= ~bit;
    }
    return 0;
  }

  capget(): CapSets {
    return { ...this.caps };
  }

  capset(sets: CapSets): void {
    // As the kernel: permitted may only shrink, effective and inheritable must stay within it.
    if ((sets.permitted & ~this.caps.permitted) !== 0n || (sets.effective & ~sets.permitted) !== 0n || (sets.inheritable & ~sets.permitted) !== 0n)
      fail('capset', 'EPERM');
    this.caps = { ...sets };
  }

  seccomp(operation: number, flags: number, program: Uint8Array): void {
    this.seccomps.push({ operation, flags, program });
  }

  /** Yields counted, for pollers' tests. */
  yields = 0;
  schedYield(): void {
    this.yields++;
  }

  // fd plumbing is not modelled: the fake fails loudly, so a test that needs it uses the real seam.
  fcntl(_fd: number, _cmd: number, _arg: number): number {
    fail('fcntl', 'ENOSYS');
  }
  pipe2(_flags: number): [number, number] {
    fail('pipe2', 'ENOSYS');
  }
  socket(_domain: number, _type: number, _protocol: number): number {
    fail('socket', 'ENOSYS');
  }
  bindUnix(_fd: number, _path: string): void {
    fail('bind', 'ENOSYS');
  }
  connectUnix(_fd: number, _path: string): void {
    fail('connect', 'ENOSYS');
  }
  send(_fd: number, _data: Uint8Array, _flags: number): number {
    fail('send', 'ENOSYS');
  }
  sendToUnix(_fd: number, _data: Uint8Array, _path: string, _flags: number): number {
    fail('sendto', 'ENOSYS');
  }
  recv(_fd: number, _data: Uint8Array, _flags: number): number {
    fail('recv', 'ENOSYS');
  }
  socketpair(_domain: number, _type: number, _protocol: number): [number, number] {
    fail('socketpair', 'ENOSYS');
  }
  sendFds(_fd: number, _data: Uint8Array, _fds: readonly number[], _flags: number): number {
    fail('sendmsg', 'ENOSYS');
  }
  recvFds(_fd: number, _data: Uint8Array, _maxFds: number, _flags: number): { bytes: number; fds: number[]; truncated: boolean } {
    fail('recvmsg', 'ENOSYS');
  }

  getrlimit(resource: number): Rlimit {
    if (resource !== RLIMIT_MEMLOCK) fail('getrlimit', 'EINVAL');
    return { ...this.memlock };
  }

  setrlimit(resource: number, limit: Rlimit): void {
    if (resource !== RLIMIT_MEMLOCK) fail('setrlimit', 'EINVAL');
    this.memlock = { ...limit };
  }

  view(addr: bigint, length: number): ArrayBuffer {
    const m = this.mappings.get(addr);
    if (!m || m.length !== length) throw new Error(`fake: a view must cover exactly one mapping (0x${addr.toString(16)}, ${length})`);
    return m.bytes;
  }
}
