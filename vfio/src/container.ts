/**
 * A VFIO container (/dev/vfio/vfio): one IOMMU context. Groups are attached to it, then the IOMMU
 * model is chosen (SET_IOMMU, type1v2), then DMA is mapped: every IOVA a device of its groups may
 * reach is one the container mapped, with the permission it was mapped with.
 *
 * Lifetime: `close()` closes the attached groups first (each closing its devices), then the
 * container fd; closing twice is a no-op. See Group for the order within a group.
 */
import { explain, FIX, VfioArgError, VfioCode, VfioError, errnoOf } from './errors.js';
import { defaultSys, O_CLOEXEC, O_RDWR, RLIMIT_MEMLOCK, type Sys } from 'linux-sys';
import { argszOf, decodeDmaUnmap, decodeIommuInfo, encodeDmaMap, encodeDmaUnmap, IOCTL, LAYOUT, VFIO, withArgsz, type IommuInfo } from './uapi.js';

export interface ContainerOptions {
  sys?: Sys;
  /** Default /dev/vfio/vfio. */
  path?: string;
}

export interface MapPerm {
  /** The device may read the memory. */
  read: boolean;
  /** The device may write the memory. */
  write: boolean;
}

/** What a group must offer its container, without importing Group (no cycle). */
export interface ContainerMember {
  close(): void;
}

export class Container {
  readonly fd: number;
  readonly path: string;
  readonly sys: Sys;
  private closed = false;
  private iommuType: number | undefined;
  private cachedInfo: IommuInfo | undefined;
  private readonly members = new Set<ContainerMember>();
  // Preallocated argument structs: map/unmap allocate nothing but their BigInts.
  private readonly mapArg = new Uint8Array(LAYOUT.vfio_iommu_type1_dma_map.size);
  private readonly unmapArg = new Uint8Array(LAYOUT.vfio_iommu_type1_dma_unmap.size);

  private constructor(sys: Sys, path: string, fd: number) {
    this.sys = sys;
    this.path = path;
    this.fd = fd;
  }

  /** Open the container node and check the API version (0). */
  static open(options: ContainerOptions = {}): Container {
    const sys = options.sys ?? defaultSys();
    const path = options.path ?? '/dev/vfio/vfio';
    let fd: number;
    try {
      fd = sys.open(path, O_RDWR | O_CLOEXEC);
    } catch (e) {
      const err = errnoOf(e);
      if (err === 'ENOENT' || err === 'ENODEV' || err === 'ENXIO') throw explain(e, VfioCode.NO_VFIO, `${path} does not exist`, `open ${path}`, FIX.noVfio);
      if (err === 'EACCES' || err === 'EPERM') throw explain(e, VfioCode.ACCESS, 'permission denied', `open ${path}`, FIX.access);
      throw e;
    }
    const c = new Container(sys, path, fd);
    const version = c.apiVersion();
    if (version !== VFIO.VFIO_API_VERSION) {
      c.close();
      throw new VfioError(VfioCode.API_VERSION, `the kernel speaks VFIO API version ${version}, this package speaks ${VFIO.VFIO_API_VERSION}`, {
        op: 'VFIO_GET_API_VERSION',
        fix: 'use a kernel and vfio-bindings of matching API versions',
      });
    }
    return c;
  }

  apiVersion(): number {
    this.assertOpen('VFIO_GET_API_VERSION');
    return this.sys.ioctl(this.fd, IOCTL.VFIO_GET_API_VERSION);
  }

  /** VFIO_CHECK_EXTENSION: does the container support an IOMMU type or extension (VFIO.VFIO_TYPE1v2_IOMMU, ...)? */
  checkExtension(extension: number): boolean {
    this.assertOpen('VFIO_CHECK_EXTENSION');
    return this.sys.ioctl(this.fd, IOCTL.VFIO_CHECK_EXTENSION, extension) > 0;
  }

  /** Whether SET_IOMMU has been done. */
  get iommuSet(): boolean {
    return this.iommuType !== undefined;
  }

  /**
   * VFIO_SET_IOMMU. Needs at least one group attached (Group.setContainer). EPERM here means the
   * host has no interrupt remapping.
   */
  setIommu(type: number = VFIO.VFIO_TYPE1v2_IOMMU): void {
    const op = 'VFIO_SET_IOMMU';
    this.assertOpen(op);
    if (!this.checkExtension(type)) {
      throw new VfioError(VfioCode.NO_EXTENSION, `the container does not support IOMMU type ${type}`, {
        op,
        fix: 'type1v2 (3) needs a kernel with vfio_iommu_type1 loaded (`modprobe vfio_iommu_type1`)',
      });
    }
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_SET_IOMMU, type);
    } catch (e) {
      const err = errnoOf(e);
      if (err === 'EPERM') throw explain(e, VfioCode.NO_INTERRUPT_REMAPPING, 'the kernel refused the IOMMU: no interrupt remapping', op, FIX.noIntRemap);
      if (err === 'EINVAL' && this.members.size === 0) {
        throw explain(e, VfioCode.ARG, 'no group is attached to the container', op, 'call group.setContainer(container) before setIommu()');
      }
      throw explain(e, VfioCode.SYSCALL, 'failed', op);
    }
    this.iommuType = type;
  }

  /**
   * VFIO_IOMMU_GET_INFO: page sizes, valid IOVA ranges, DMA mappings available. The kernel grows
   * `argsz` to the size the capability chain needs; the call is then repeated with that size.
   */
  info(): IommuInfo {
    const op = 'VFIO_IOMMU_GET_INFO';
    this.assertOpen(op);
    if (!this.iommuSet) throw new VfioError(VfioCode.IOMMU_NOT_SET, 'the IOMMU model is not set', { op, fix: FIX.iommuNotSet });
    let buf = withArgsz(LAYOUT.vfio_iommu_type1_info.size);
    for (let attempt = 0; ; attempt++) {
      this.sys.ioctl(this.fd, IOCTL.VFIO_IOMMU_GET_INFO, buf);
      const asked = argszOf(buf);
      if (asked <= buf.byteLength) break;
      if (attempt >= 3 || asked > 1 << 20) throw new VfioError(VfioCode.SYSCALL, `the kernel keeps asking for a larger buffer (${asked} bytes)`, { op });
      buf = withArgsz(asked);
    }
    this.cachedInfo = decodeIommuInfo(buf);
    return this.cachedInfo;
  }

  /**
   * VFIO_IOMMU_MAP_DMA: let the devices reach `size` bytes at `vaddr` (this process's memory) at
   * `iova`, with the given permission. The kernel is the authority on what is valid; its refusals
   * are explained (memlock, overlap, range, alignment, order).
   */
  map(vaddr: bigint, iova: bigint, size: bigint | number, perm: MapPerm): void {
    const op = 'VFIO_IOMMU_MAP_DMA';
    this.assertOpen(op);
    const len = this.size(size, op);
    if (typeof vaddr !== 'bigint' || typeof iova !== 'bigint') throw new VfioArgError('vaddr and iova must be bigint', op);
    if (vaddr < 0n || iova < 0n || vaddr + len > 1n << 64n || iova + len > 1n << 64n)
      throw new VfioArgError('vaddr and iova must be unsigned 64-bit addresses', op);
    if (!perm || (!perm.read && !perm.write)) throw new VfioArgError('a mapping needs read, write or both (the kernel refuses neither)', op);
    const flags = (perm.read ? VFIO.VFIO_DMA_MAP_FLAG_READ : 0) | (perm.write ? VFIO.VFIO_DMA_MAP_FLAG_WRITE : 0);
    encodeDmaMap(this.mapArg, vaddr, iova, len, flags);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_IOMMU_MAP_DMA, this.mapArg);
    } catch (e) {
      throw this.explainMapError(e, op, vaddr, iova, len);
    }
  }

  /**
   * VFIO_IOMMU_UNMAP_DMA of exactly what was mapped. The kernel reports back how much it unmapped;
   * anything short of `size` (nothing mapped there, or part of a range) is an ERR_VFIO_UNMAP_SHORT.
   */
  unmap(iova: bigint, size: bigint | number): void {
    const op = 'VFIO_IOMMU_UNMAP_DMA';
    this.assertOpen(op);
    const len = this.size(size, op);
    if (typeof iova !== 'bigint' || iova < 0n || iova + len > 1n << 64n) throw new VfioArgError('iova must be an unsigned 64-bit bigint', op);
    encodeDmaUnmap(this.unmapArg, iova, len);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_IOMMU_UNMAP_DMA, this.unmapArg);
    } catch (e) {
      const err = errnoOf(e);
      if (err === 'EINVAL' && !this.iommuSet) throw explain(e, VfioCode.IOMMU_NOT_SET, 'unmap before SET_IOMMU', op, FIX.iommuNotSet);
      if (err === 'EINVAL') {
        throw explain(
          e,
          VfioCode.UNMAP_SHORT,
          `cannot unmap 0x${len.toString(16)} bytes at IOVA 0x${iova.toString(16)}: it would split a mapping, or is not page-aligned`,
          op,
          'unmap exactly the ranges that were mapped',
        );
      }
      throw explain(e, VfioCode.SYSCALL, 'failed', op);
    }
    const done = decodeDmaUnmap(this.unmapArg).size;
    if (done !== len) {
      throw new VfioError(
        VfioCode.UNMAP_SHORT,
        `unmapped 0x${done.toString(16)} of 0x${len.toString(16)} bytes at IOVA 0x${iova.toString(16)}${done === 0n ? ': nothing was mapped there' : ''}`,
        {
          op,
          fix: 'unmap exactly the ranges that were mapped (a window unmapped twice, or a wrong IOVA, is a bug in the caller)',
        },
      );
    }
  }

  /** @internal Group.setContainer/unsetContainer keep the member list for close(). */
  attach(member: ContainerMember): void {
    this.members.add(member);
  }

  /** @internal */
  detach(member: ContainerMember): void {
    this.members.delete(member);
    // The kernel resets the container's IOMMU when its last group leaves.
    if (this.members.size === 0) {
      this.iommuType = undefined;
      this.cachedInfo = undefined;
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Close the groups attached (and their devices), then the container. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const m of [...this.members]) m.close();
    this.closed = true;
    this.sys.close(this.fd);
  }

  private size(size: bigint | number, op: string): bigint {
    if (typeof size === 'number') {
      if (!Number.isSafeInteger(size) || size <= 0) throw new VfioArgError(`size ${size} must be a positive integer`, op);
      return BigInt(size);
    }
    if (typeof size !== 'bigint' || size <= 0n) throw new VfioArgError(`size ${String(size)} must be a positive integer`, op);
    return size;
  }

  private assertOpen(op: string): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, `container ${this.path} is closed`, { op });
  }

  private explainMapError(e: unknown, op: string, vaddr: bigint, iova: bigint, len: bigint): unknown {
    const err = errnoOf(e);
    const what = `0x${len.toString(16)} bytes at IOVA 0x${iova.toString(16)}`;
    if (err === 'ENOMEM') {
      let limit = '';
      try {
        const l = this.sys.getrlimit(RLIMIT_MEMLOCK);
        limit = ` (RLIMIT_MEMLOCK is ${l.cur === 0xffff_ffff_ffff_ffffn ? 'unlimited' : `${l.cur} bytes`})`;
      } catch {
        // the limit is a detail of the message; the diagnosis stands without it
      }
      return explain(e, VfioCode.MEMLOCK, `cannot pin ${what}: locked-memory limit reached${limit}`, op, FIX.memlock);
    }
    if (err === 'EEXIST')
      return explain(e, VfioCode.MAP_EXISTS, `${what} overlaps an existing mapping`, op, 'unmap the old range first, or allocate IOVAs that do not collide');
    if (err === 'EINVAL') {
      if (!this.iommuSet) return explain(e, VfioCode.IOMMU_NOT_SET, 'map before SET_IOMMU', op, FIX.iommuNotSet);
      const info = this.cachedInfo ?? this.tryInfo();
      if (info) {
        const page = info.pageSizes[0] ?? 4096n;
        if (vaddr % page !== 0n || iova % page !== 0n || len % page !== 0n) {
          return explain(
            e,
            VfioCode.MAP_ALIGN,
            `vaddr 0x${vaddr.toString(16)}, ${what}: not aligned to the IOMMU page (${page} bytes)`,
            op,
            `align vaddr, iova and size to ${page} bytes`,
          );
        }
        const ranges = info.iovaRanges;
        if (ranges && !ranges.some((r) => iova >= r.start && iova + len - 1n <= r.end)) {
          const list = ranges.map((r) => `0x${r.start.toString(16)}-0x${r.end.toString(16)}`).join(', ');
          return explain(
            e,
            VfioCode.IOVA_RANGE,
            `${what} is outside the valid IOVA ranges (${list})`,
            op,
            'allocate IOVAs inside the ranges container.info() reports (the IOMMU address width may be 39 bits)',
          );
        }
      }
      return explain(e, VfioCode.SYSCALL, `the kernel refused ${what}`, op);
    }
    if (err === 'EFAULT')
      return explain(
        e,
        VfioCode.ARG,
        `vaddr 0x${vaddr.toString(16)} is not mapped memory of this process`,
        op,
        'map memory that exists (mmap, memfd) before giving it to the IOMMU',
      );
    if (err === 'ENOSPC')
      return explain(
        e,
        VfioCode.SYSCALL,
        'the container has no mappings left (dma_entry_limit, 65535 by default)',
        op,
        'merge contiguous windows, or raise vfio_iommu_type1 dma_entry_limit',
      );
    return explain(e, VfioCode.SYSCALL, 'failed', op);
  }

  private tryInfo(): IommuInfo | undefined {
    try {
      return this.info();
    } catch {
      return undefined;
    }
  }
}
