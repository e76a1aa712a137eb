/**
 * A temporary sysfs tree for tests, laid out like the kernel's: bus/pci/devices/BDF with vendor,
 * device, class, driver_override and the driver and iommu_group links; bus/pci/drivers/NAME;
 * kernel/iommu_groups/N/{devices/BDF,type}; class/iommu/NAME. `kernelWriter` plays the kernel's
 * part when bind/unbind/drivers_probe are written.
 */
import { lstatSync, mkdirSync, mkdtempSync, readFileSync, readlinkSync, rmSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { basename, join } from 'node:path';

export interface TreeDevice {
  address: string;
  vendor: number;
  device: number;
  class: number;
  driver?: string;
  group?: number;
}

export interface TreeOptions {
  devices: TreeDevice[];
  drivers?: string[];
  groupTypes?: Record<number, string>;
  iommus?: string[];
}

export class SysfsTree {
  readonly root: string;
  readonly writes: Array<[string, string]> = [];

  constructor(o: TreeOptions) {
    this.root = mkdtempSync(join(tmpdir(), 'vfio-sysfs-'));
    for (const d of o.drivers ?? []) mkdirSync(join(this.root, 'bus/pci/drivers', d), { recursive: true });
    mkdirSync(join(this.root, 'bus/pci/devices'), { recursive: true });
    writeFileSync(join(this.root, 'bus/pci/drivers_probe'), '');
    for (const dev of o.devices) {
      const dir = join(this.root, 'devices/pci0000:00', dev.address);
      mkdirSync(dir, { recursive: true });
      symlinkSync(`../../../devices/pci0000:00/${dev.address}`, join(this.root, 'bus/pci/devices', dev.address));
      const hex = (n: number, w: number): string => `0x${n.toString(16).padStart(w, '0')}\n`;
      writeFileSync(join(dir, 'vendor'), hex(dev.vendor, 4));
      writeFileSync(join(dir, 'device'), hex(dev.device, 4));
      writeFileSync(join(dir, 'class'), hex(dev.class, 6));
      writeFileSync(join(dir, 'driver_override'), '(null)\n');
      if (dev.driver) this.link(dev.address, dev.driver);
      if (dev.group !== undefined) {
        const g = join(this.root, 'kernel/iommu_groups', String(dev.group));
        mkdirSync(join(g, 'devices'), { recursive: true });
        symlinkSync(`../../../../devices/pci0000:00/${dev.address}`, join(g, 'devices', dev.address));
        symlinkSync(`../../../kernel/iommu_groups/${dev.group}`, join(dir, 'iommu_group'));
        const type = o.groupTypes?.[dev.group];
        if (type) writeFileSync(join(g, 'type'), `${type}\n`);
      }
    }
    for (const i of o.iommus ?? []) mkdirSync(join(this.root, 'class/iommu', i), { recursive: true });
  }

  /** Bind `address` to `driver` (the driver link), as the kernel would. */
  link(address: string, driver: string | undefined): void {
    const l = join(this.root, 'devices/pci0000:00', address, 'driver');
    if (this.exists(l)) unlinkSync(l);
    if (driver) {
      mkdirSync(join(this.root, 'bus/pci/drivers', driver), { recursive: true });
      symlinkSync(`../../../bus/pci/drivers/${driver}`, l);
    }
  }

  private exists(p: string): boolean {
    try {
      lstatSync(p);
      return true;
    } catch {
      return false;
    }
  }

  driverOf(address: string): string | undefined {
    try {
      return basename(readlinkSync(join(this.root, 'devices/pci0000:00', address, 'driver')));
    } catch {
      return undefined;
    }
  }

  /**
   * A writer that behaves like the kernel: driver_override is stored, DRIVER/unbind drops the link,
   * drivers_probe binds the override if any, else `defaultDriver` of that address.
   */
  kernelWriter(defaultDriver: Record<string, string>): (path: string, value: string) => void {
    return (path, value) => {
      this.writes.push([path.slice(this.root.length), value]);
      const rel = path.slice(this.root.length + 1);
      const v = value.trim();
      if (rel.endsWith('/driver_override')) {
        writeFileSync(path, v === '' ? '(null)\n' : `${v}\n`);
      } else if (/^bus\/pci\/drivers\/[^/]+\/unbind$/.test(rel)) {
        this.link(v, undefined);
      } else if (rel === 'bus/pci/drivers_probe') {
        const override = readFileSync(join(this.root, 'bus/pci/devices', v, 'driver_override'), 'utf8').trim();
        this.link(v, override !== '(null)' ? override : defaultDriver[v]);
      } else {
        throw new Error(`fake kernel: unexpected write to ${rel}`);
      }
    };
  }

  remove(): void {
    rmSync(this.root, { recursive: true, force: true });
  }
}
