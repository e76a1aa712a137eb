/** The simulator as a target of the shared NVMe driver suite, plus a helper for sim-only tests. */
import { SimMachine } from '../../../sim/machine.js';
import { SimNvme, type SimNvmeOptions } from '../../../sim/nvme/controller.js';
import type { PciFunction } from '../../../sim/pci.js';
import type { WorkMode } from '../../../sim/sched.js';
import type { NvmeTarget } from './suite.js';

export const ADDRESS = '0000:00:01.0';

export interface SimRig {
  machine: SimMachine;
  model: SimNvme;
  fn: PciFunction;
}

export function simRig(options: SimNvmeOptions = {}, workMode: WorkMode = 'deferred'): SimRig {
  const machine = new SimMachine();
  const model = new SimNvme({ serial: 'sim0', namespaces: [{ blocks: 16384 }], ...options });
  const fn = machine.attach(model, { address: ADDRESS, workMode });
  return { machine, model, fn };
}

export function simTarget(workMode: WorkMode, options: SimNvmeOptions = {}): NvmeTarget {
  let rig: SimRig | undefined;
  return {
    name: `the simulator (${workMode})`,
    serial: 'sim0',
    model: 'dmabox simulated NVMe',
    queues: 4,
    reportsTransferErrors: true,
    open() {
      rig = simRig(options, workMode);
      return rig.machine.platform(ADDRESS);
    },
    faultCount() {
      return rig ? rig.machine.iommu.faults(ADDRESS).length : 0;
    },
  };
}
