/**
 * The device of a simulated sandbox, held by the manager: a SimMachine with one simulated NVMe
 * controller, window memory from memfds (so the container maps the very bytes the simulated
 * device reads and writes), the windows mapped in the device's IOMMU domain with the policy's
 * device access, and the interrupt eventfds the container polls. It is the `MailboxTarget` the
 * container's register accesses are applied to, and it quarantines the device between containers.
 */
import type { Sys } from 'linux-sys';
import type { IrqVector } from '../../drivers/contract/platform.js';
import { MemfdMemoryProvider } from '../../dma/memfd.js';
import { SimMachine } from '../../sim/machine.js';
import { SimNvme } from '../../sim/nvme/controller.js';
import { E1000eModel } from '../../sim/e1000e/model.js';
import { attachPeer, type SimPeer } from '../../sim/net/peer.js';
import { parseMac } from '../../sim/net/packets.js';
import type { PciFunction } from '../../sim/pci.js';
import { setBusMaster } from '../../spec/pci/config.js';
import type { SimPlatform } from '../../sim/platform.js';
import type { DriverKind } from '../../drivers/contract/driver.js';
import { SandboxError } from './errors.js';
import type { Policy } from '../../policies/types.js';
import type { MailboxTarget } from './mailbox.js';
import { SandboxDevice } from './device.js';

export { windowAccess, type GrantedWindow, type WindowAccess } from './device.js';

/** The PCI address the simulated device gets (one device per sandbox machine). */
export const SIM_ADDRESS = '0000:00:01.0';

export class SimDevice extends SandboxDevice implements MailboxTarget {
  readonly kind = 'sim' as const;
  readonly machine: SimMachine;
  readonly fn: PciFunction;
  readonly platform: SimPlatform;
  readonly address = SIM_ADDRESS;
  readonly description: string;
  /** The simulated 82574L and its link partner (policy `device: { sim: e1000e, peer }`); undefined for NVMe. */
  readonly nic: E1000eModel | undefined;
  /** The NVMe model (for its counters), when the device is sim:nvme. */
  readonly nvme: SimNvme | undefined;
  peer: SimPeer | undefined;
  private vectors: IrqVector[] = [];
  private released = false;

  constructor(policy: Policy, sys: Sys) {
    super(policy, sys);
    const d = policy.device;
    if (!('sim' in d) || (d.sim !== 'nvme' && d.sim !== 'e1000e')) {
      throw new SandboxError(
        'ERR_SANDBOX_DEVICE',
        `policy ${policy.name}: only simulated NVMe and e1000e devices (device: sim:nvme, sim:e1000e) run in a simulated sandbox; got ${JSON.stringify(d)}`,
        {
          fix: 'use a sim:nvme or sim:e1000e device, or a pci: device on a host with VFIO',
        },
      );
    }
    this.description = `sim:${d.sim}@${SIM_ADDRESS}`;
    this.machine = new SimMachine({ memory: new MemfdMemoryProvider({ sys, hugePages: 'never', name: `dmabox-${policy.name}` }) });
    if (d.sim === 'e1000e') {
      // the 82574L model; its link partner on the simulated wire is in the manager too (sim/net/peer.ts)
      this.nic = new E1000eModel({ mac: parseMac(d.mac) });
      this.fn = this.machine.attach(this.nic, { address: SIM_ADDRESS });
      this.peer = attachPeer(this.nic, d.peer);
    } else {
      const model = (this.nvme = new SimNvme({
        serial: d.serial,
        namespaces: [{ blocks: Math.floor(d.capacity / d.blockSize), blockSize: d.blockSize }],
        maxQueueEntries: d.mqes,
        maxIoQueues: d.maxQueues,
      }));
      this.fn = this.machine.attach(model, { address: SIM_ADDRESS });
    }
    this.platform = this.machine.platform(SIM_ADDRESS);
    try {
      this.mapWindows(this.platform.dma);
    } catch (e) {
      this.release();
      throw e;
    }
  }

  deviceFd(): number | undefined {
    return undefined;
  }

  /** The NVMe model is a disk, the 82574L a NIC. */
  driverKind(): DriverKind {
    return this.nic ? 'net' : 'block';
  }

  /** Vectors the device offers of each kind. */
  get irqCounts(): { msix: number; intx: number } {
    return { msix: this.platform.irq.count('msix'), intx: this.platform.irq.count('intx') };
  }

  barSizes(): number[] {
    return [0, 1, 2, 3, 4, 5].map((i) => this.fn.barSize(i));
  }

  // ---- MailboxTarget: the container's register accesses ----
  barSize(index: number): number {
    return this.fn.barSize(index);
  }
  barRead32(index: number, offset: number): number {
    return this.fn.barRead32(index, offset);
  }
  barWrite32(index: number, offset: number, value: number): void {
    this.fn.barWrite32(index, offset, value);
  }
  cfgRead(offset: number, width: 1 | 2 | 4): number {
    return this.fn.cfgRead(offset, width);
  }
  cfgWrite(offset: number, width: 1 | 2 | 4, value: number): void {
    this.fn.cfgWrite(offset, width, value);
  }
  irqEnable(kind: 'msix' | 'intx', vectors: number): number {
    if (vectors > this.irqFds.length) throw new SandboxError('ERR_SANDBOX_IRQ', `${vectors} vectors asked, ${this.irqFds.length} granted`);
    this.vectors = this.platform.irq.enable(kind, vectors);
    const fds = this.irqFds;
    this.vectors.forEach((v, i) => v.onFire(() => this.sys.eventfdWrite(fds[i]!, 1n)));
    return vectors;
  }
  irqDisable(): void {
    this.platform.irq.disable();
    this.vectors = [];
  }
  reset(): void {
    this.platform.reset();
  }

  /**
   * Between containers: bus mastering off (PCI command bit 2, so no DMA can start), interrupts
   * off, then a function-level reset (the device forgets its queues). Only after this may a
   * window be reused by the next container or unmapped.
   */
  quarantine(): void {
    setBusMaster(this.platform.config, false);
    this.quarantineLog.push('bme-off');
    this.platform.irq.disable();
    this.vectors = [];
    this.fn.flr();
    this.quarantineLog.push('flr');
  }

  /** Quarantine, unmap and free every window, close the platform. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.quarantine();
    this.quarantineLog.push('unmap');
    this.closeIrqFds();
    this.platform.close();
  }
}
