/**
 * SimMachine: simulated physical memory, an IOMMU, and PCI functions, bundled.
 *
 *   const machine = new SimMachine();
 *   const fn = machine.attach(new NvmeModel(...), { address: '0000:00:01.0' });
 *   const platform = machine.platform('0000:00:01.0');   // what the driver gets
 *
 * `memory` chooses where window memory comes from: 'heap' (ArrayBuffers, default) or any
 * DmaMemoryProvider (the memfd one, so windows can be shared with a driver process by fd); each
 * block is registered as simulated physical RAM.
 */
import { HeapMemoryProvider, type DmaMemoryProvider } from '../dma/memory.js';
import type { MemlockAccount } from '../dma/memlock.js';
import { SimRamProvider } from './backend.js';
import { SimError } from './errors.js';
import { SimIommu, type IommuStatus } from './iommu.js';
import { PhysicalMemory } from './memory.js';
import type { DeviceModel } from './model.js';
import { PciFunction } from './pci.js';
import { SimPlatform } from './platform.js';
import type { WorkMode } from './sched.js';

export interface SimMachineOptions {
  /** IOMMU off: IOVA = physical, nothing confined (loudly flagged). */
  passthrough?: boolean;
  /** Window memory: 'heap' (default) or a provider such as the memfd one. */
  memory?: 'heap' | DmaMemoryProvider;
}

const PCI_ADDRESS = /^[0-9a-f]{4}:[0-9a-f]{2}:[01][0-9a-f]\.[0-7]$/;

export interface MachineStatus {
  readonly iommu: IommuStatus;
  readonly devices: readonly {
    address: string;
    model: string;
    busMaster: boolean;
    hung: boolean;
    open: boolean;
    /** Device faults (exceptions caught inside the model), PCIe DEVSTA.FED, the last fault's text. */
    faults: number;
    fatal: boolean;
    lastFault: string | null;
    /** MSI-X messages for vectors the function does not have, dropped. */
    msixDropped: number;
  }[];
}

export class SimMachine {
  readonly memory = new PhysicalMemory();
  readonly iommu: SimIommu;
  /** The provider windows come from (registers each block as simulated RAM). */
  readonly ram: SimRamProvider;
  private readonly functions = new Map<string, PciFunction>();
  private readonly open = new Map<string, SimPlatform>();
  private nextBar = 0xfe000000;

  constructor(options: SimMachineOptions = {}) {
    this.iommu = new SimIommu({ passthrough: options.passthrough });
    const inner = options.memory === undefined || options.memory === 'heap' ? new HeapMemoryProvider() : options.memory;
    this.ram = new SimRamProvider(inner, this.memory);
  }

  /** Plug a device model in at a PCI address (`0000:00:01.0`). */
  attach(model: DeviceModel, options: { address: string; workMode?: WorkMode }): PciFunction {
    const address = options.address;
    if (typeof address !== 'string' || !PCI_ADDRESS.test(address)) {
      throw new SimError('ERR_SIM_ARG', `PCI address ${String(address)} is not of the form dddd:bb:dd.f (lower-case hex)`, { fix: "e.g. '0000:00:01.0'" });
    }
    if (this.functions.has(address)) throw new SimError('ERR_SIM_ARG', `a device is already attached at ${address}`);
    const fn = new PciFunction(address, model, this.iommu, this.memory);
    fn.assignBarAddresses(this.nextBar);
    for (const b of model.bars) this.nextBar += b.size;
    this.functions.set(address, fn);
    model.attach(fn);
    if (options.workMode !== undefined) fn.setWorkMode(options.workMode);
    return fn;
  }

  function(address: string): PciFunction {
    const fn = this.functions.get(address);
    if (fn === undefined) {
      throw new SimError('ERR_SIM_ARG', `no device at ${address} (attached: ${[...this.functions.keys()].join(', ') || 'none'})`);
    }
    return fn;
  }

  /** Open the device for a driver. One open platform per function at a time. */
  platform(address: string, options: { busMaster?: boolean; memlock?: MemlockAccount } = {}): SimPlatform {
    const fn = this.function(address);
    if (this.open.has(address)) {
      throw new SimError('ERR_SIM_STATE', `${address} is already open (${this.open.get(address)!.name})`, {
        fix: 'close the first platform before opening another',
      });
    }
    const p = new SimPlatform(fn, {
      memory: this.ram,
      physical: this.memory,
      memlock: options.memlock,
      busMaster: options.busMaster,
      onClose: () => this.open.delete(address),
    });
    this.open.set(address, p);
    return p;
  }

  status(): MachineStatus {
    return {
      iommu: this.iommu.status(),
      devices: [...this.functions.values()].map((fn) => ({
        address: fn.address,
        model: fn.model.name,
        busMaster: fn.busMasterEnabled,
        hung: fn.hung,
        open: this.open.has(fn.address),
        faults: fn.faultCount,
        fatal: fn.fatal,
        lastFault: lastFault(fn),
        msixDropped: fn.msix?.dropped ?? 0,
      })),
    };
  }
}

function lastFault(fn: PciFunction): string | null {
  const f = fn.deviceFaults[fn.deviceFaults.length - 1];
  return f === undefined ? null : `${f.source}: ${f.message}`;
}
