/**
 * The simulated device as the device process holds it: a SimMachine (the IOMMU model and simulated
 * physical memory) with one model attached (SimNvme, or E1000eModel with its link partner), whose
 * physical memory is ONLY the window memfds the manager handed over, mapped in the device's IOMMU
 * domain at the IOVAs and with the device permissions START names. It is the `MailboxTarget` the
 * container's register accesses are applied to, raises interrupts by writing the inherited
 * eventfds, and quarantines itself on request (bus mastering off, interrupts off, FLR).
 */
import type { Sys } from 'linux-sys';
import { MAP_SHARED, PROT_READ, PROT_WRITE } from 'linux-sys';
import type { IrqVector } from '../../drivers/contract/platform.js';
import { SimMachine } from '../../sim/machine.js';
import { SimNvme } from '../../sim/nvme/controller.js';
import { MemoryStore } from '../../sim/nvme/store.js';
import { E1000eModel } from '../../sim/e1000e/model.js';
import { attachPeer, type SimPeer } from '../../sim/net/peer.js';
import { parseMac } from '../../sim/net/packets.js';
import { PERM_READ, PERM_WRITE } from '../../sim/iommu.js';
import type { PciFunction } from '../../sim/pci.js';
import type { SimPlatform } from '../../sim/platform.js';
import { setBusMaster } from '../../spec/pci/config.js';
import { parsePlan, type FaultPlan } from '../../sim/faults/plan.js';
import { deviceShape, QUARANTINE_DONE, type CounterName, type DeviceStart } from '../abi/device.js';
import type { MailboxTarget } from './mailbox.js';
import { DeviceProcessError } from './errors.js';
import { mapOverReservation, MAX_RESERVED } from './store-reservation.js';

/** An inherited memfd mapped whole, shared with the manager and the container. */
interface Mapped {
  addr: bigint;
  size: number;
  bytes: Uint8Array;
}

/** koffi.view aborts the process above 4 GiB (LAB-NOTES): one mapping per memfd stays below that. */
const MAX_MAPPED = MAX_RESERVED;

export class DeviceHost implements MailboxTarget {
  readonly machine: SimMachine;
  readonly fn: PciFunction;
  readonly platform: SimPlatform;
  readonly nvme: SimNvme | undefined;
  readonly nic: E1000eModel | undefined;
  readonly peer: SimPeer | undefined;
  private vectors: IrqVector[] = [];
  private readonly maps = new Map<number, Mapped>();

  constructor(
    private readonly sys: Sys,
    readonly start: DeviceStart,
  ) {
    this.machine = new SimMachine();
    const m = start.model;
    const faultPlan = devicePlan(start);
    if (m.kind === 'e1000e') {
      this.nic = new E1000eModel({ mac: parseMac(m.mac), ...(faultPlan === undefined ? {} : { faultPlan }) });
      this.fn = this.machine.attach(this.nic, { address: start.address });
      this.peer = attachPeer(this.nic, m.peer);
    } else {
      const bytes = m.blocks * m.blockSize;
      // The namespace's media: the manager's memfd, mapped (a disk's media outlives its controller).
      const store = new MemoryStore(this.map(m.storeFdSlot, bytes, 'namespace store', true).bytes.subarray(0, bytes));
      this.nvme = new SimNvme({
        serial: m.serial,
        namespaces: [{ blocks: m.blocks, blockSize: m.blockSize, store }],
        maxQueueEntries: m.mqes,
        maxIoQueues: m.maxQueues,
        ...(faultPlan === undefined ? {} : { faultPlan }),
      });
      this.fn = this.machine.attach(this.nvme, { address: start.address });
    }
    this.platform = this.machine.platform(start.address);
    this.checkShape();
    // Window memory: each memfd becomes simulated RAM, and each mapping an IOMMU mapping with its device access.
    const domain = this.machine.iommu.domain(start.address);
    for (const w of start.mappings) {
      const mapped = this.map(w.fdSlot, w.memfdSize, w.label);
      const region = this.machine.memory.regionOf(mapped.bytes) ?? this.machine.memory.add(mapped.bytes, `memfd@${w.fdSlot}`);
      domain.map(Number(BigInt(w.iova)), region.base + w.offset, w.size, (w.read ? PERM_READ : 0) | (w.write ? PERM_WRITE : 0));
    }
  }

  /** Map an inherited memfd whole (once per fd slot); the store over a spare's reservation when there is one (store-reservation.ts). */
  private map(slot: number, size: number, what: string, store = false): Mapped {
    const have = this.maps.get(slot);
    if (have) {
      if (have.size < size) throw new DeviceProcessError('ERR_DEVICE_START', `${what}: fd ${slot} is mapped with ${have.size} bytes, ${size} asked`);
      return have;
    }
    if (size <= 0 || size > MAX_MAPPED)
      throw new DeviceProcessError('ERR_DEVICE_START', `${what}: ${size} bytes on fd ${slot}`, { fix: `a memfd of 1 byte to ${MAX_MAPPED} bytes` });
    const over = store ? mapOverReservation(this.sys, slot, size) : undefined;
    let m: Mapped;
    if (over !== undefined) m = { addr: over.addr, size, bytes: over.bytes };
    else {
      const addr = this.sys.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, slot, 0n);
      m = { addr, size, bytes: new Uint8Array(this.sys.view(addr, size)) };
    }
    this.maps.set(slot, m);
    return m;
  }

  private checkShape(): void {
    const want = deviceShape(this.start.model);
    const bars = [0, 1, 2, 3, 4, 5].map((i) => this.fn.barSize(i));
    const msix = this.platform.irq.count('msix'),
      intx = this.platform.irq.count('intx');
    if (bars.join() !== want.bars.join() || msix !== want.msix || intx !== want.intx) {
      throw new DeviceProcessError(
        'ERR_DEVICE_START',
        `the ${this.start.model.kind} model has BARs ${bars.join()} and ${msix} MSI-X/${intx} INTx vectors; the manager announced ${want.bars.join()}, ${want.msix}/${want.intx}`,
        { fix: 'sandbox/abi/device.ts deviceShape() must follow the model' },
      );
    }
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
    const fds = this.start.irqFdSlots;
    if (vectors > fds.length) throw new DeviceProcessError('ERR_DEVICE_IRQ', `${vectors} vectors asked, ${fds.length} granted`);
    this.vectors = this.platform.irq.enable(kind, vectors);
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

  /** Bus mastering off (no DMA can start), interrupts off, function-level reset; returns QUARANTINE_DONE flags. */
  quarantine(): number {
    setBusMaster(this.platform.config, false);
    this.platform.irq.disable();
    this.vectors = [];
    this.fn.flr();
    return QUARANTINE_DONE.BME_OFF | QUARANTINE_DONE.IRQ_OFF | QUARANTINE_DONE.FLR;
  }

  /** What the heartbeat reports. */
  counters(): Partial<Record<CounterName, number>> {
    const fn = this.fn;
    const c: Partial<Record<CounterName, number>> = {
      'iommu.faults': this.machine.iommu.faultCount,
      'pci.busMaster': fn.busMasterEnabled ? 1 : 0,
      'pci.resets': fn.resets,
      'msix.delivered': fn.msix?.delivered ?? 0,
      'msix.dropped': fn.msix?.dropped ?? 0,
      'pci.deviceFaults': fn.faultCount,
    };
    if (this.nvme) {
      const s = this.nvme.stats;
      Object.assign(c, {
        'nvme.commands': s.commands,
        'nvme.adminCommands': s.adminCommands,
        'nvme.dataTransferErrors': s.dataTransferErrors,
        'nvme.badDoorbells': s.badDoorbells,
        'nvme.interrupts': s.interrupts,
        'nvme.fuaWrites': s.fuaWrites,
        'nvme.badPrpLists': s.badPrpLists,
      });
    }
    if (this.nic) {
      const n = this.nic.counters;
      Object.assign(c, {
        'nic.txFrames': n.txFrames,
        'nic.rxDmaDropped': n.rxDmaDropped,
        'nic.txDmaDropped': n.txDmaDropped,
        'nic.rxNoDescriptor': n.rxNoDescriptor,
        'nic.rxFiltered': n.rxFiltered,
        'nic.irqBadVector': n.irqBadVector,
      });
    }
    if (this.peer) {
      const p = this.peer.counters;
      Object.assign(c, { 'peer.seen': p.seen, 'peer.arpReplies': p.arpReplies, 'peer.echoReplies': p.echoReplies });
    }
    return c;
  }
}

/**
 * START's fault plan (sim/faults' text form), parsed and held to the model START names: a plan
 * that does not parse, or one for the other model, refuses the start (ERR_DEVICE_START).
 */
export function devicePlan(start: DeviceStart): FaultPlan | undefined {
  if (start.faultPlan === undefined) return undefined;
  let plan: FaultPlan;
  try {
    plan = parsePlan(start.faultPlan);
  } catch (e) {
    throw new DeviceProcessError('ERR_DEVICE_START', `START's fault plan ${JSON.stringify(start.faultPlan)} does not parse: ${(e as Error).message}`, {
      cause: e,
      fix: 'give a plan in sim/faults text form, e.g. nvme.wrong-phase:on=read@7 (describeFaultClasses() lists the classes)',
    });
  }
  if (plan.cls.device !== start.model.kind) {
    throw new DeviceProcessError(
      'ERR_DEVICE_START',
      `START's fault plan ${plan.cls.name} is for the ${plan.cls.device} model, and this device is ${start.model.kind}`,
      {
        fix: `give a ${start.model.kind}.* fault plan`,
      },
    );
  }
  return plan;
}
