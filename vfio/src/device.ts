/**
 * A VFIO device fd: info, regions (BARs, config space, ROM), interrupts, reset.
 *
 * A device comes from `group.device(address)`, or from an fd number the process already holds
 * (`Device.fromFd(3)`: a driver container inherits only the device fd). It then works without the
 * group or the container, which stay with the manager.
 *
 * Lifetime: `close()` disables interrupts routed by this object, closes their eventfds, unmaps the
 * BARs mapped through `mapBar` (drop those Mmio objects: their accesses then fail with
 * ERR_VFIO_CLOSED), and closes the fd. Idempotent.
 */
import { explain, VfioArgError, VfioCode, VfioError } from './errors.js';
import { EventfdVector, type IrqKind } from './irq.js';
import { Mmio, SEGMENT_BYTES, type MmioSegment } from './mmio.js';
import { defaultSys, MAP_SHARED, PROT_READ, PROT_WRITE, type Sys } from 'linux-sys';
import {
  argszOf,
  decodeDeviceInfo,
  decodeIrqInfo,
  decodeRegionInfo,
  encodeIrqInfo,
  encodeIrqSetEventfds,
  encodeIrqSetNone,
  encodeRegionInfo,
  IOCTL,
  LAYOUT,
  VFIO,
  withArgsz,
  type DeviceInfo,
  type IrqInfo,
  type RegionInfo,
} from './uapi.js';

export interface DeviceOptions {
  sys?: Sys;
  /** For messages: the PCI address, `fd 3`... */
  name?: string;
  /** @internal the group's bookkeeping */
  onClose?: (d: Device) => void;
}

const IRQ_INDEX: Readonly<Record<IrqKind, number>> = Object.freeze({
  intx: VFIO.VFIO_PCI_INTX_IRQ_INDEX,
  msi: VFIO.VFIO_PCI_MSI_IRQ_INDEX,
  msix: VFIO.VFIO_PCI_MSIX_IRQ_INDEX,
});

/** PCI configuration space through the config region (vfio-pci region 7), 8/16/32-bit accesses. */
export class ConfigSpace {
  private readonly scratch = new Uint8Array(4);
  private readonly view = new DataView(this.scratch.buffer);
  private readonly b1 = this.scratch.subarray(0, 1);
  private readonly b2 = this.scratch.subarray(0, 2);

  constructor(
    private readonly dev: Device,
    /** Offset of the config region in the device fd. */
    readonly regionOffset: bigint,
    /** 256 (conventional) or 4096 (PCI Express extended). */
    readonly size: number,
  ) {}

  read8(offset: number): number {
    this.io(offset, 1, false);
    return this.scratch[0]!;
  }
  read16(offset: number): number {
    this.io(offset, 2, false);
    return this.view.getUint16(0, true);
  }
  read32(offset: number): number {
    this.io(offset, 4, false);
    return this.view.getUint32(0, true);
  }
  write8(offset: number, value: number): void {
    this.scratch[0] = value;
    this.io(offset, 1, true);
  }
  write16(offset: number, value: number): void {
    this.view.setUint16(0, value, true);
    this.io(offset, 2, true);
  }
  write32(offset: number, value: number): void {
    this.view.setUint32(0, value >>> 0, true);
    this.io(offset, 4, true);
  }

  private io(offset: number, width: 1 | 2 | 4, write: boolean): void {
    if (!(Number.isInteger(offset) && offset >= 0 && offset + width <= this.size && offset % width === 0)) {
      throw new VfioArgError(`config ${width}-byte access at ${offset}: must be naturally aligned and inside the ${this.size}-byte config space`, 'config');
    }
    const buf = width === 1 ? this.b1 : width === 2 ? this.b2 : this.scratch;
    const at = this.regionOffset + BigInt(offset);
    const n = write ? this.dev.sys.pwrite(this.dev.fd, buf, at) : this.dev.sys.pread(this.dev.fd, buf, at);
    if (n !== width)
      throw new VfioError(VfioCode.SYSCALL, `config ${write ? 'write' : 'read'} of ${width} bytes at ${offset} moved ${n}`, { op: `config ${this.dev.name}` });
  }
}

export class Device {
  readonly fd: number;
  readonly name: string;
  readonly sys: Sys;
  private closed = false;
  private readonly onCloseHook: ((d: Device) => void) | undefined;
  private configSpace: ConfigSpace | undefined;
  private readonly bars = new Set<Mmio>();
  /** Vectors routed per IRQ index, so disable/close can undo them. */
  private readonly vectors = new Map<number, EventfdVector[]>();

  private constructor(fd: number, sys: Sys, name: string, onClose: ((d: Device) => void) | undefined) {
    this.fd = fd;
    this.sys = sys;
    this.name = name;
    this.onCloseHook = onClose;
  }

  /** Wrap a device fd the process already holds (inherited from the manager, e.g. fd 3). */
  static fromFd(fd: number, options: DeviceOptions = {}): Device {
    if (!Number.isSafeInteger(fd) || fd < 0) throw new VfioArgError(`device fd ${fd} must be a non-negative integer`, 'Device.fromFd');
    return new Device(fd, options.sys ?? defaultSys(), options.name ?? `fd ${fd}`, options.onClose);
  }

  info(): DeviceInfo {
    this.assertOpen('VFIO_DEVICE_GET_INFO');
    const buf = withArgsz(LAYOUT.vfio_device_info.size);
    this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_GET_INFO, buf);
    return decodeDeviceInfo(buf);
  }

  /** VFIO_DEVICE_GET_REGION_INFO, repeated with the larger argsz the kernel asks for when the region has capabilities. */
  regionInfo(index: number): RegionInfo {
    const op = `VFIO_DEVICE_GET_REGION_INFO ${index}`;
    this.assertOpen(op);
    if (!Number.isInteger(index) || index < 0) throw new VfioArgError(`region index ${index} must be a non-negative integer`, op);
    let buf = encodeRegionInfo(index);
    for (let attempt = 0; ; attempt++) {
      try {
        this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_GET_REGION_INFO, buf);
      } catch (e) {
        throw explain(e, VfioCode.SYSCALL, `no region ${index} on ${this.name}`, op);
      }
      const asked = argszOf(buf);
      if (asked <= buf.byteLength) break;
      if (attempt >= 3 || asked > 1 << 20) throw new VfioError(VfioCode.SYSCALL, `the kernel keeps asking for a larger buffer (${asked} bytes)`, { op });
      buf = encodeRegionInfo(index, asked);
    }
    return decodeRegionInfo(buf);
  }

  /** Configuration space (region VFIO_PCI_CONFIG_REGION_INDEX). */
  get config(): ConfigSpace {
    this.assertOpen('config');
    if (!this.configSpace) {
      const r = this.regionInfo(VFIO.VFIO_PCI_CONFIG_REGION_INDEX);
      this.configSpace = new ConfigSpace(this, r.offset, Number(r.size));
    }
    return this.configSpace;
  }

  /**
   * Map a memory BAR into an Mmio. The whole BAR when it is mmap-able; with a sparse-mmap
   * capability, the areas it lists, and pread/pwrite for the rest. Refused for a BAR that cannot be
   * mmapped at all (ERR_VFIO_REGION_MMAP).
   */
  mapBar(index: number): Mmio {
    const op = `map BAR${index} of ${this.name}`;
    if (!Number.isInteger(index) || index < VFIO.VFIO_PCI_BAR0_REGION_INDEX || index > VFIO.VFIO_PCI_BAR5_REGION_INDEX) {
      throw new VfioArgError(`BAR index ${index} must be 0 to 5`, op);
    }
    const r = this.regionInfo(index);
    if (r.size === 0n)
      throw new VfioError(VfioCode.REGION_MMAP, `BAR${index} is not implemented (size 0)`, { op, fix: "check the device's BAR layout (lspci -v)" });
    if (!r.mmap)
      throw new VfioError(VfioCode.REGION_MMAP, `BAR${index} cannot be mmapped (an I/O port BAR, or the kernel forbids it)`, {
        op,
        fix: 'use regionRead/regionWrite for this BAR',
      });
    if (r.size > BigInt(Number.MAX_SAFE_INTEGER) || r.size % 4n !== 0n)
      throw new VfioError(VfioCode.REGION_MMAP, `BAR${index} size 0x${r.size.toString(16)} is not usable`, { op });
    const size = Number(r.size);
    const areas = r.sparse ?? [{ offset: 0n, size: r.size }];
    const maps: Array<{ addr: bigint; len: number }> = [];
    const segments: MmioSegment[] = [];
    const prot = (r.read ? PROT_READ : 0) | (r.write ? PROT_WRITE : 0);
    try {
      for (const a of areas) {
        if (a.size === 0n) continue;
        const len = Number(a.size);
        const addr = this.sys.mmap(0n, len, prot, MAP_SHARED, this.fd, r.offset + a.offset);
        maps.push({ addr, len });
        for (let off = 0; off < len; off += SEGMENT_BYTES) {
          const piece = Math.min(SEGMENT_BYTES, len - off);
          segments.push({ offset: Number(a.offset) + off, bytes: this.sys.view(addr + BigInt(off), piece) });
        }
      }
    } catch (e) {
      for (const m of maps) this.sys.munmap(m.addr, m.len);
      throw explain(e, VfioCode.REGION_MMAP, 'mmap failed', op);
    }
    const whole = areas.length === 1 && areas[0]!.offset === 0n && areas[0]!.size === r.size;
    const scratch = new Uint8Array(4);
    const sv = new DataView(scratch.buffer);
    const fallback = whole
      ? undefined
      : {
          read32: (off: number): number => {
            if (this.sys.pread(this.fd, scratch, r.offset + BigInt(off)) !== 4)
              throw new VfioError(VfioCode.SYSCALL, `short read at BAR${index} offset ${off}`, { op });
            return sv.getUint32(0, true);
          },
          write32: (off: number, v: number): void => {
            sv.setUint32(0, v, true);
            if (this.sys.pwrite(this.fd, scratch, r.offset + BigInt(off)) !== 4)
              throw new VfioError(VfioCode.SYSCALL, `short write at BAR${index} offset ${off}`, { op });
          },
        };
    const mmio: Mmio = new Mmio(size, segments, {
      ...(fallback ? { fallback } : {}),
      onClose: () => {
        this.bars.delete(mmio);
        for (const m of maps) this.sys.munmap(m.addr, m.len);
      },
    });
    this.bars.add(mmio);
    return mmio;
  }

  /** pread from a region (any BAR, ROM, config) at `offset` within it. Returns bytes read. */
  regionRead(index: number, offset: bigint, buf: Uint8Array): number {
    const r = this.regionInfo(index);
    this.checkRegionRange(r, offset, buf.byteLength, 'regionRead');
    return this.sys.pread(this.fd, buf, r.offset + offset);
  }

  /** pwrite to a region at `offset` within it. Returns bytes written. */
  regionWrite(index: number, offset: bigint, buf: Uint8Array): number {
    const r = this.regionInfo(index);
    this.checkRegionRange(r, offset, buf.byteLength, 'regionWrite');
    return this.sys.pwrite(this.fd, buf, r.offset + offset);
  }

  irqInfo(index: number): IrqInfo {
    const op = `VFIO_DEVICE_GET_IRQ_INFO ${index}`;
    this.assertOpen(op);
    const buf = encodeIrqInfo(index);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_GET_IRQ_INFO, buf);
    } catch (e) {
      throw explain(e, VfioCode.SYSCALL, `no IRQ index ${index} on ${this.name}`, op);
    }
    return decodeIrqInfo(buf);
  }

  /** How many vectors of a kind the device offers. */
  irqCount(kind: IrqKind): number {
    return this.irqInfo(IRQ_INDEX[kind]).count;
  }

  /**
   * Route vectors 0..n-1 of a kind to fresh eventfds (replacing earlier routing of that kind) and
   * return them. Only one kind can be active at a time on vfio-pci: enabling one disables others
   * routed through this object.
   */
  enableInterrupts(kind: IrqKind, n: number): EventfdVector[] {
    const index = IRQ_INDEX[kind];
    const op = `VFIO_DEVICE_SET_IRQS ${kind}`;
    if (index === undefined) throw new VfioArgError(`interrupt kind "${String(kind)}" must be msix, msi or intx`, op);
    this.assertOpen(op);
    const info = this.irqInfo(index);
    if (!Number.isInteger(n) || n < 1 || n > info.count) throw new VfioArgError(`${kind}: ${n} vectors asked, the device offers ${info.count}`, op);
    if (!info.eventfd) throw new VfioError(VfioCode.SYSCALL, `${kind} cannot signal eventfds on ${this.name}`, { op });
    for (const i of [...this.vectors.keys()]) this.disableIndex(i);
    const vecs: EventfdVector[] = [];
    try {
      for (let i = 0; i < n; i++) vecs.push(EventfdVector.create(this.sys, i));
      this.sys.ioctl(
        this.fd,
        IOCTL.VFIO_DEVICE_SET_IRQS,
        encodeIrqSetEventfds(
          index,
          0,
          vecs.map((v) => v.fd),
        ),
      );
    } catch (e) {
      for (const v of vecs) v.close();
      throw explain(e, VfioCode.SYSCALL, `routing ${n} ${kind} vector(s) failed`, op);
    }
    this.vectors.set(index, vecs);
    return vecs;
  }

  /** Unmask INTx (or any maskable index) after handling: INTx is automasked by the kernel on each interrupt. */
  unmaskInterrupt(kind: IrqKind, vector = 0): void {
    this.assertOpen('VFIO_DEVICE_SET_IRQS unmask');
    this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetNone(IRQ_INDEX[kind], VFIO.VFIO_IRQ_SET_ACTION_UNMASK, vector, 1));
  }

  /** Stop delivering interrupts of a kind (all kinds when omitted) and close their eventfds. */
  disableInterrupts(kind?: IrqKind): void {
    this.assertOpen('VFIO_DEVICE_SET_IRQS disable');
    if (kind === undefined) {
      for (const i of [...this.vectors.keys()]) this.disableIndex(i);
    } else {
      this.disableIndex(IRQ_INDEX[kind]);
    }
  }

  /** VFIO_DEVICE_RESET (function-level reset or whatever reset the device supports). */
  reset(): void {
    const op = 'VFIO_DEVICE_RESET';
    this.assertOpen(op);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_RESET);
    } catch (e) {
      throw explain(e, VfioCode.SYSCALL, `${this.name} could not be reset`, op, 'the device may not support a function-level reset (info().canReset)');
    }
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Disable interrupts, unmap BARs, close the fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const i of [...this.vectors.keys()]) {
      try {
        this.disableIndex(i);
      } catch {
        // closing the fd below releases the vectors in the kernel anyway
        for (const v of this.vectors.get(i) ?? []) v.close();
        this.vectors.delete(i);
      }
    }
    for (const m of [...this.bars]) m.close();
    this.closed = true;
    this.sys.close(this.fd);
    this.onCloseHook?.(this);
  }

  private disableIndex(index: number): void {
    const vecs = this.vectors.get(index);
    if (!vecs) return;
    this.vectors.delete(index);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetNone(index, VFIO.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0));
    } finally {
      for (const v of vecs) v.close();
    }
  }

  private checkRegionRange(r: RegionInfo, offset: bigint, len: number, op: string): void {
    if (typeof offset !== 'bigint' || offset < 0n || offset + BigInt(len) > r.size) {
      throw new VfioArgError(`${len} bytes at ${String(offset)} lie outside region ${r.index} of ${r.size} bytes`, op);
    }
  }

  private assertOpen(op: string): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, `device ${this.name} is closed`, { op });
  }
}
