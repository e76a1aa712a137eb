/**
 * PCI functions through sysfs: list them (ids, class, driver, IOMMU group), bind one to vfio-pci
 * (driver_override + drivers_probe, remembering the driver it had) and give it back.
 *
 * The sysfs root is injectable (default /sys) so tests run over a temporary tree; so is the writer,
 * so a test can play the kernel's part when a control file (drivers_probe, unbind) is written.
 * Plain node:fs: sysfs needs no koffi.
 */
import { readdirSync, readFileSync, readlinkSync, writeFileSync, existsSync } from 'node:fs';
import { basename, join } from 'node:path';
import { VfioArgError, VfioCode, VfioError } from './errors.js';

export interface SysfsOptions {
  /** Default /sys. */
  root?: string;
  /** Writes a sysfs control file; default fs.writeFileSync. */
  write?: (path: string, value: string) => void;
}

export interface PciFunction {
  /** `0000:00:01.0` */
  address: string;
  vendor: number;
  device: number;
  /** 24-bit class code (0x010802: NVMe). */
  class: number;
  /** The bound driver's name, undefined when none. */
  driver: string | undefined;
  /** The IOMMU group number, undefined when the function has none (no IOMMU). */
  iommuGroup: number | undefined;
}

export interface GroupMember {
  address: string;
  driver: string | undefined;
}

/** What `bindToVfio` did, to give the function back. */
export interface BindReceipt {
  address: string;
  /** The driver it had before (undefined: none). */
  originalDriver: string | undefined;
  /** It was already on vfio-pci: release leaves it there. */
  alreadyBound: boolean;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[0-9a-f]{2}\.[0-7]$/;

function rootOf(o: SysfsOptions): string {
  return o.root ?? '/sys';
}

function readHex(path: string): number {
  let text: string;
  try {
    text = readFileSync(path, 'utf8').trim();
  } catch (e) {
    throw new VfioError(VfioCode.SYSFS, `cannot read ${path}`, { op: 'sysfs', cause: e });
  }
  const n = Number.parseInt(text, 16);
  if (!/^(0x)?[0-9a-fA-F]+$/.test(text) || Number.isNaN(n)) throw new VfioError(VfioCode.SYSFS, `${path} holds "${text}", not a hex number`, { op: 'sysfs' });
  return n;
}

/** The last path component of a symlink, undefined when the link does not exist. */
function linkName(path: string): string | undefined {
  try {
    return basename(readlinkSync(path));
  } catch {
    return undefined;
  }
}

function checkAddress(address: string, op: string): void {
  if (!PCI_ADDRESS.test(address)) throw new VfioArgError(`"${address}" is not a PCI address of the form 0000:00:01.0 (lower-case hex)`, op);
}

/** One PCI function, read from /sys/bus/pci/devices/ADDRESS. */
export function pciFunction(address: string, options: SysfsOptions = {}): PciFunction {
  checkAddress(address, 'pciFunction');
  const dir = join(rootOf(options), 'bus/pci/devices', address);
  if (!existsSync(dir))
    throw new VfioError(VfioCode.SYSFS, `no PCI function ${address} (${dir} is missing)`, { op: 'sysfs', fix: 'list the functions with `lspci -D`' });
  const group = linkName(join(dir, 'iommu_group'));
  return {
    address,
    vendor: readHex(join(dir, 'vendor')),
    device: readHex(join(dir, 'device')),
    class: readHex(join(dir, 'class')),
    driver: linkName(join(dir, 'driver')),
    iommuGroup: group === undefined ? undefined : Number(group),
  };
}

/** Every PCI function, sorted by address. */
export function listPciFunctions(options: SysfsOptions = {}): PciFunction[] {
  const dir = join(rootOf(options), 'bus/pci/devices');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new VfioError(VfioCode.SYSFS, `cannot list ${dir}`, { op: 'sysfs', cause: e, fix: 'is sysfs mounted? (mount -t sysfs sysfs /sys)' });
  }
  return names
    .filter((n) => PCI_ADDRESS.test(n))
    .sort()
    .map((a) => pciFunction(a, options));
}

/** The functions with the given vendor and device ids (`findPciFunctions(0x1b36, 0x0010)`). */
export function findPciFunctions(vendor: number, device: number, options: SysfsOptions = {}): PciFunction[] {
  return listPciFunctions(options).filter((f) => f.vendor === vendor && f.device === device);
}

/** Each device of IOMMU group `group` and its driver (from /sys/kernel/iommu_groups/N/devices). */
export function iommuGroupDevices(group: number, options: SysfsOptions = {}): GroupMember[] {
  const dir = join(rootOf(options), 'kernel/iommu_groups', String(group), 'devices');
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    throw new VfioError(VfioCode.SYSFS, `no IOMMU group ${group} (${dir})`, { op: 'sysfs', cause: e });
  }
  return names.sort().map((address) => ({ address, driver: linkName(join(rootOf(options), 'bus/pci/devices', address, 'driver')) }));
}

/**
 * Drivers a group member may be bound to without making the group unviable for VFIO: vfio-pci
 * itself, pci-stub, and pcieport (the kernel lets bridges keep their port driver). A member with
 * no driver is harmless too. Any other driver means the host still owns a device that shares the
 * IOMMU context, and VFIO refuses the whole group.
 */
export const VFIO_COMPATIBLE_DRIVERS: ReadonlySet<string> = new Set(['vfio-pci', 'pci-stub', 'pcieport']);

/** The members that make a group unviable: those bound to a host driver VFIO does not accept. */
export function groupBlockers(members: readonly GroupMember[]): GroupMember[] {
  return members.filter((m) => m.driver !== undefined && !VFIO_COMPATIBLE_DRIVERS.has(m.driver));
}

function writer(options: SysfsOptions): (path: string, value: string) => void {
  return options.write ?? ((path, value) => writeFileSync(path, value));
}

function writeCtl(options: SysfsOptions, path: string, value: string, op: string): void {
  try {
    writer(options)(path, value);
  } catch (e) {
    throw new VfioError(VfioCode.SYSFS, `writing "${value.trim()}" to ${path} failed`, {
      op,
      cause: e,
      fix: 'binding drivers needs root and a writable sysfs',
    });
  }
}

/**
 * Bind a function to vfio-pci: set driver_override, unbind it from its driver, and ask the bus to
 * probe it again (the kernel then picks vfio-pci). The receipt remembers the old driver.
 */
export function bindToVfio(address: string, options: SysfsOptions = {}): BindReceipt {
  const op = `bind ${address} to vfio-pci`;
  const fn = pciFunction(address, options);
  if (fn.driver === 'vfio-pci') return { address, originalDriver: undefined, alreadyBound: true };
  const root = rootOf(options);
  const dev = join(root, 'bus/pci/devices', address);
  if (!existsSync(join(root, 'bus/pci/drivers/vfio-pci'))) {
    throw new VfioError(VfioCode.SYSFS, 'the vfio-pci driver is not loaded', { op, fix: '`modprobe vfio-pci` (as root)' });
  }
  writeCtl(options, join(dev, 'driver_override'), 'vfio-pci', op);
  if (fn.driver) writeCtl(options, join(root, 'bus/pci/drivers', fn.driver, 'unbind'), address, op);
  writeCtl(options, join(root, 'bus/pci/drivers_probe'), address, op);
  const now = linkName(join(dev, 'driver'));
  if (now !== 'vfio-pci') {
    throw new VfioError(VfioCode.SYSFS, `${address} is bound to ${now ?? 'no driver'} after the probe, not vfio-pci`, {
      op,
      fix: 'check `dmesg` for vfio-pci errors (the device may lack an IOMMU group: is the IOMMU on?)',
    });
  }
  return { address, originalDriver: fn.driver, alreadyBound: false };
}

/** Give a function back: clear driver_override, unbind from vfio-pci, re-probe (the old driver takes it again). */
export function releaseFromVfio(receipt: BindReceipt, options: SysfsOptions = {}): void {
  if (receipt.alreadyBound) return;
  const op = `release ${receipt.address} from vfio-pci`;
  checkAddress(receipt.address, op);
  const root = rootOf(options);
  const dev = join(root, 'bus/pci/devices', receipt.address);
  writeCtl(options, join(dev, 'driver_override'), '\n', op);
  if (linkName(join(dev, 'driver')) === 'vfio-pci') writeCtl(options, join(root, 'bus/pci/drivers/vfio-pci/unbind'), receipt.address, op);
  writeCtl(options, join(root, 'bus/pci/drivers_probe'), receipt.address, op);
  const now = linkName(join(dev, 'driver'));
  if (receipt.originalDriver && now !== receipt.originalDriver) {
    throw new VfioError(VfioCode.SYSFS, `${receipt.address} is bound to ${now ?? 'no driver'} after release, not ${receipt.originalDriver}`, {
      op,
      fix: `bind it by hand: echo ${receipt.address} > /sys/bus/pci/drivers/${receipt.originalDriver}/bind`,
    });
  }
}
