/**
 * The device of a sandbox on real VFIO, held by the manager: the container, group and device fds
 * (platform/vfio.ts's VfioPlatform), the policy's windows mapped with their device access. The
 * container gets only a duplicate of the device fd (config space, BAR mmap, reset through it) and
 * the window memfds: no container or group fd, so it can neither map more DMA nor open another
 * device of the group.
 */
import type { Sys } from 'linux-sys';
import { EFD_CLOEXEC, EFD_NONBLOCK, type PollHandle } from 'linux-sys';
import { encodeIrqSetEventfds, encodeIrqSetNone, findPciFunctions, IOCTL, iommuStatus, VFIO, type IommuStatus } from 'vfio-bindings';
import type { DriverKind } from '../../drivers/contract/driver.js';
import { SandboxError } from './errors.js';
import type { Policy } from '../../policies/types.js';
import { VfioPlatform, type VfioPlatformOptions } from '../../platform/vfio.js';
import { SandboxDevice } from './device.js';
import { enableErrorReporting, PCI, setBusMaster } from '../../spec/pci/config.js';

export function vfioAddress(policy: Policy): string {
  const d = policy.device;
  if ('pci' in d) return d.pci;
  if ('id' in d) {
    const [vendor, device] = d.id.split(':').map((x) => parseInt(x, 16)) as [number, number];
    const found = findPciFunctions(vendor, device);
    const f = found[d.index];
    if (!f)
      throw new SandboxError('ERR_SANDBOX_DEVICE', `policy ${policy.name}: no PCI function ${d.id} number ${d.index} (found ${found.length})`, {
        fix: "check 'dmabox devices' and the policy's device",
      });
    return f.address;
  }
  throw new SandboxError('ERR_SANDBOX_DEVICE', `policy ${policy.name}: not a PCI device`);
}

export class VfioDevice extends SandboxDevice {
  readonly kind = 'vfio' as const;
  readonly address: string;
  readonly description: string;
  readonly platform: VfioPlatform;
  private released = false;

  /** `bind`: bind the function to vfio-pci first and give it back to its driver at release. */
  /**
   * `iommu`: the host's IOMMU status (default: read now); `platform`: where to find the group and
   * sysfs (tests over vfio-bindings' fake seam).
   */
  constructor(
    policy: Policy,
    sys: Sys,
    options: { bind?: boolean; iommu?: IommuStatus; platform?: Pick<VfioPlatformOptions, 'group' | 'sysfsRoot' | 'devDir'> } = {},
  ) {
    super(policy, sys);
    this.address = vfioAddress(policy);
    this.description = `vfio:${this.address}`;
    this.checkConfinement(options.iommu ?? iommuStatus());
    this.platform = VfioPlatform.open(this.address, {
      ...options.platform,
      sys,
      bind: options.bind === true,
      hugePages: policy.windows.some((w) => w.hugePages) ? 'auto' : 'never',
    });
    try {
      this.mapWindows(this.platform.dma);
      this.armErrorIrq();
    } catch (e) {
      this.release();
      throw e;
    }
  }

  /** The manager's eventfd on the device's error interrupt, and its poller (undefined: the device has none). */
  private errorFd: number | undefined;
  private errorPoll: PollHandle | undefined;
  /** Whether the device's error interrupt is armed (vfio-pci offers it for PCI Express functions only). */
  get errorIrqArmed(): boolean {
    return this.errorFd !== undefined;
  }

  /**
   * Route VFIO_PCI_ERR_IRQ_INDEX to an eventfd the manager polls. vfio-pci signals it from its AER
   * error_detected callback, when the kernel's AER driver recovers the function or the bus above it
   * (uncorrectable errors; correctable ones are only logged). The container never sees this eventfd,
   * and the routing outlives every container and reset: only release() undoes it. Also turns on the
   * function's own error reporting (Device Control), which some devices ignore (QEMU's e1000e does).
   */
  private armErrorIrq(): void {
    const dev = this.platform.device;
    let count: number;
    try {
      const info = dev.irqInfo(VFIO.VFIO_PCI_ERR_IRQ_INDEX);
      count = info.eventfd ? info.count : 0;
    } catch {
      count = 0; // an older vfio-pci, or not PCI Express: no error interrupt
    }
    if (count < 1) return;
    const fd = this.sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    try {
      this.sys.ioctl(dev.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetEventfds(VFIO.VFIO_PCI_ERR_IRQ_INDEX, 0, [fd]));
    } catch (e) {
      this.sys.close(fd);
      throw new SandboxError(
        'ERR_SANDBOX_DEVICE',
        `policy ${this.policy.name}: ${this.address}: its error interrupt could not be routed: ${(e as Error).message}`,
        {
          cause: e,
          fix: 'check the kernel log; another user of the device may hold its error interrupt',
        },
      );
    }
    this.errorFd = fd;
    this.errorPoll = this.sys.poll(fd, () => {
      const n = this.sys.eventfdRead(fd);
      if (n > 0n) this.deviceErrorRaised(`the device signalled ${n} error(s) on its VFIO error interrupt (AER)`);
    });
    enableErrorReporting(this.platform.config);
  }

  private disarmErrorIrq(): void {
    if (this.errorFd === undefined) return;
    this.errorPoll?.close();
    this.errorPoll = undefined;
    try {
      this.sys.ioctl(
        this.platform.device.fd,
        IOCTL.VFIO_DEVICE_SET_IRQS,
        encodeIrqSetNone(VFIO.VFIO_PCI_ERR_IRQ_INDEX, VFIO.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0),
      );
    } catch {
      /* closing the device fd below releases it in the kernel anyway */
    }
    this.sys.close(this.errorFd);
    this.errorFd = undefined;
  }

  /**
   * Refuse a device the IOMMU would not confine: no IOMMU at all, or vfio's no-IOMMU mode (DMA to
   * anywhere), unless the policy says `unconfined: true`. A group whose default domain is identity
   * (iommu=pt) is fine: VFIO attaches its own translated domain when the manager takes the group.
   */
  private checkConfinement(st: IommuStatus): void {
    const why: string[] = [];
    if (st.iommus.length === 0) why.push('no IOMMU is active on this host');
    if (st.noIommuMode) why.push("vfio's enable_unsafe_noiommu_mode is on");
    const group = st.groups.find((g) => g.devices.some((d) => d.address === this.address));
    if (group?.domain === 'blocked') why.push(`group ${group.group} blocks all DMA`);
    if (why.length === 0) return;
    if (this.policy.unconfined) {
      this.warnings.push(`UNCONFINED: ${why.join('; ')}: the device's DMA is not confined`);
      return;
    }
    throw new SandboxError('ERR_SANDBOX_NOT_CONFINED', `policy ${this.policy.name}: ${this.address} would not be confined: ${why.join('; ')}`, {
      fix: "boot with the IOMMU on (intel_iommu=on / amd_iommu=on) and vfio's no-IOMMU mode off; 'dmabox doctor' says what is missing; or, for debugging only, unconfined: true",
    });
  }

  /** Said at start (an unconfined policy on a host that cannot confine). */
  readonly warnings: string[] = [];

  deviceFd(): number {
    return this.platform.device.fd;
  }

  /**
   * From the PCI class code (PCI Local Bus 3.0 §6.2.1: its third byte, offset 0x0b, is the base class): 0x01 mass
   * storage (NVMe is 01:08:02) needs a block driver, 0x02 network a net driver; others say nothing.
   */
  driverKind(): DriverKind | undefined {
    const base = this.platform.config.read8(PCI.CLASS_CODE.offset + 2);
    return base === 0x01 ? 'block' : base === 0x02 ? 'net' : undefined;
  }

  get irqCounts(): { msix: number; intx: number } {
    return { msix: this.platform.device.irqCount('msix'), intx: this.platform.device.irqCount('intx') };
  }

  barSizes(): number[] {
    return [0, 1, 2, 3, 4, 5].map((i) => {
      try {
        const r = this.platform.device.regionInfo(i);
        return r.mmap ? Number(r.size) : 0;
      } catch {
        return 0;
      }
    });
  }

  quarantine(): void {
    setBusMaster(this.platform.config, false);
    this.quarantineLog.push('bme-off');
    this.platform.device.disableInterrupts();
    // The container routed vectors on its own dup of the device fd: stop them here too
    // (DATA_NONE | ACTION_TRIGGER, count 0), before the reset.
    for (const index of [VFIO.VFIO_PCI_MSIX_IRQ_INDEX, VFIO.VFIO_PCI_INTX_IRQ_INDEX]) {
      try {
        this.sys.ioctl(this.platform.device.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetNone(index, VFIO.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0));
      } catch {
        /* nothing routed on that index */
      }
    }
    this.platform.device.reset();
    this.quarantineLog.push('flr');
    // The reset cleared Device Control: error reporting on again (the eventfd's routing survives it).
    if (this.errorFd !== undefined) enableErrorReporting(this.platform.config);
  }

  release(): void {
    if (this.released) return;
    this.released = true;
    try {
      this.quarantine();
    } finally {
      this.quarantineLog.push('unmap');
      this.disarmErrorIrq();
      this.closeIrqFds();
      this.platform.close();
    }
  }
}
