/**
 * A VFIO group (/dev/vfio/N): the unit of isolation the IOMMU can tell apart. It is viable only
 * when every device in it is bound to vfio-pci (or no driver); then it is attached to a container
 * and hands out device fds.
 *
 * Lifetime (chosen: close in order, never an error): `close()` closes the group's open devices
 * first, then detaches it from its container (UNSET_CONTAINER), then closes the group fd. The
 * kernel would answer EBUSY to UNSET_CONTAINER while a device fd is open, so the order matters.
 * Closing twice is a no-op. A device made with `Device.fromFd` belongs to no group.
 */
import type { Container } from './container.js';
import { Device } from './device.js';
import { explain, FIX, VfioArgError, VfioCode, VfioError, errnoOf } from './errors.js';
import { iommuGroupDevices, type GroupMember } from './sysfs.js';
import { defaultSys, O_CLOEXEC, O_RDWR, type Sys } from 'linux-sys';
import { decodeGroupStatus, IOCTL, LAYOUT, withArgsz } from './uapi.js';

export interface GroupOptions {
  sys?: Sys;
  /** Where the group nodes are; default /dev/vfio. */
  devDir?: string;
  /** sysfs root for the diagnosis of a group that is not viable; default /sys. */
  sysfsRoot?: string;
}

export interface GroupStatus {
  flags: number;
  viable: boolean;
  containerSet: boolean;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

export class Group {
  readonly number: number;
  readonly fd: number;
  readonly path: string;
  readonly sys: Sys;
  private readonly sysfsRoot: string;
  private containerRef: Container | undefined;
  private readonly devices = new Set<Device>();
  private closed = false;

  private constructor(sys: Sys, n: number, path: string, fd: number, sysfsRoot: string) {
    this.sys = sys;
    this.number = n;
    this.path = path;
    this.fd = fd;
    this.sysfsRoot = sysfsRoot;
  }

  static open(groupNumber: number, options: GroupOptions = {}): Group {
    if (!Number.isSafeInteger(groupNumber) || groupNumber < 0)
      throw new VfioArgError(`group number ${groupNumber} must be a non-negative integer`, 'Group.open');
    const sys = options.sys ?? defaultSys();
    const path = `${options.devDir ?? '/dev/vfio'}/${groupNumber}`;
    const op = `open ${path}`;
    let fd: number;
    try {
      fd = sys.open(path, O_RDWR | O_CLOEXEC);
    } catch (e) {
      const err = errnoOf(e);
      if (err === 'ENOENT')
        throw explain(
          e,
          VfioCode.GROUP_NOT_FOUND,
          `there is no VFIO group ${groupNumber}`,
          op,
          `${FIX.bindVfio}; if /dev/vfio is missing altogether: ${FIX.noVfio}`,
        );
      if (err === 'EBUSY') throw explain(e, VfioCode.GROUP_BUSY, `group ${groupNumber} is already open`, op, FIX.groupBusy);
      if (err === 'EACCES' || err === 'EPERM') throw explain(e, VfioCode.ACCESS, 'permission denied', op, FIX.access);
      throw e;
    }
    return new Group(sys, groupNumber, path, fd, options.sysfsRoot ?? '/sys');
  }

  status(): GroupStatus {
    this.assertOpen('VFIO_GROUP_GET_STATUS');
    const buf = withArgsz(LAYOUT.vfio_group_status.size);
    this.sys.ioctl(this.fd, IOCTL.VFIO_GROUP_GET_STATUS, buf);
    return decodeGroupStatus(buf);
  }

  /** The container this group is attached to, if any. */
  get container(): Container | undefined {
    return this.containerRef;
  }

  /** Throw ERR_VFIO_GROUP_NOT_VIABLE, listing each device of the group and its driver, unless the group is viable. */
  assertViable(): void {
    if (this.status().viable) return;
    let members: GroupMember[] = [];
    try {
      members = iommuGroupDevices(this.number, { root: this.sysfsRoot });
    } catch {
      // the listing is a help, the error stands without it
    }
    const list = members.length ? members.map((m) => `${m.address} (${m.driver ?? 'no driver'})`).join(', ') : 'the device list is not readable from sysfs';
    const culprits = members.filter((m) => m.driver && m.driver !== 'vfio-pci' && m.driver !== 'pci-stub');
    const fix = culprits.length
      ? `bind every device of the group to vfio-pci or unbind it: ${culprits.map((m) => `echo ${m.address} > /sys/bus/pci/drivers/${m.driver}/unbind`).join('; ')}`
      : 'bind every device of the group to vfio-pci, or unbind it from its driver';
    throw new VfioError(VfioCode.GROUP_NOT_VIABLE, `group ${this.number} is not viable: devices ${list}`, { op: 'VFIO_GROUP_GET_STATUS', fix });
  }

  /** VFIO_GROUP_SET_CONTAINER (the argument is a pointer to the container's fd). */
  setContainer(container: Container): void {
    const op = 'VFIO_GROUP_SET_CONTAINER';
    this.assertOpen(op);
    if (this.containerRef) throw new VfioArgError(`group ${this.number} is already attached to a container`, op);
    this.assertViable();
    const arg = new Uint8Array(4);
    new DataView(arg.buffer).setInt32(0, container.fd, true);
    try {
      this.sys.ioctl(this.fd, IOCTL.VFIO_GROUP_SET_CONTAINER, arg);
    } catch (e) {
      throw explain(e, VfioCode.SYSCALL, `attaching group ${this.number} to ${container.path} failed`, op);
    }
    this.containerRef = container;
    container.attach(this);
  }

  /** VFIO_GROUP_UNSET_CONTAINER; open devices of the group must be closed first. */
  unsetContainer(): void {
    const op = 'VFIO_GROUP_UNSET_CONTAINER';
    this.assertOpen(op);
    const c = this.containerRef;
    if (!c) return;
    if (this.devices.size > 0) {
      throw new VfioError(VfioCode.ARG, `group ${this.number} still has ${this.devices.size} open device(s)`, {
        op,
        fix: 'close the devices first (or close() the group, which does it in order)',
      });
    }
    this.sys.ioctl(this.fd, IOCTL.VFIO_GROUP_UNSET_CONTAINER);
    this.containerRef = undefined;
    c.detach(this);
  }

  /** VFIO_GROUP_GET_DEVICE_FD by PCI address (`0000:00:01.0`). Needs the container attached and its IOMMU set. */
  device(pciAddress: string): Device {
    const op = `VFIO_GROUP_GET_DEVICE_FD ${pciAddress}`;
    this.assertOpen(op);
    if (!PCI_ADDRESS.test(pciAddress)) throw new VfioArgError(`"${pciAddress}" is not a PCI address of the form 0000:00:01.0 (lower-case hex)`, op);
    if (!this.containerRef || !this.containerRef.iommuSet) {
      throw new VfioError(VfioCode.IOMMU_NOT_SET, `group ${this.number} has no container with an IOMMU set`, {
        op,
        fix: 'group.setContainer(container); container.setIommu(); then group.device(address)',
      });
    }
    const name = new TextEncoder().encode(`${pciAddress}\0`);
    let fd: number;
    try {
      fd = this.sys.ioctl(this.fd, IOCTL.VFIO_GROUP_GET_DEVICE_FD, name);
    } catch (e) {
      const err = errnoOf(e);
      if (err === 'ENODEV' || err === 'EINVAL') {
        throw explain(
          e,
          VfioCode.DEVICE_NOT_FOUND,
          `group ${this.number} has no device ${pciAddress}`,
          op,
          `list the group's devices: ls ${this.sysfsRoot}/kernel/iommu_groups/${this.number}/devices`,
        );
      }
      if (err === 'EBUSY') throw explain(e, VfioCode.GROUP_BUSY, `device ${pciAddress} is in use`, op, 'close the other device fd first');
      throw explain(e, VfioCode.SYSCALL, 'failed', op);
    }
    const dev = Device.fromFd(fd, { sys: this.sys, name: pciAddress, onClose: (d) => this.devices.delete(d) });
    this.devices.add(dev);
    return dev;
  }

  /** The devices opened through this group and not yet closed. */
  get openDevices(): readonly Device[] {
    return [...this.devices];
  }

  get isClosed(): boolean {
    return this.closed;
  }

  /** Close the open devices, detach from the container, close the group fd. Idempotent. */
  close(): void {
    if (this.closed) return;
    for (const d of [...this.devices]) d.close();
    if (this.containerRef) {
      try {
        this.unsetContainer();
      } catch {
        // Closing the fd detaches the group in the kernel anyway; keep our bookkeeping right.
        const c = this.containerRef;
        this.containerRef = undefined;
        c.detach(this);
      }
    }
    this.closed = true;
    this.sys.close(this.fd);
  }

  private assertOpen(op: string): void {
    if (this.closed) throw new VfioError(VfioCode.CLOSED, `group ${this.number} is closed`, { op });
  }
}
