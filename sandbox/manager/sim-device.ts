/**
 * The device of a simulated sandbox, as the manager holds it: NOT the model. The model runs in a
 * device process (sandbox/device/, one per incarnation, manager's end in device-process.ts), like
 * real hardware outside the CPU. The manager keeps what a host keeps of a real device: the windows'
 * memory (memfds, so the container and the device process map the very bytes the manager copies
 * block data through) and their IOVAs in the device's domain with the policy's device access, the
 * NVMe namespace's store (a memfd that outlives every device process, as a disk's media outlives a
 * controller reset), the fault log (FAULT frames, attributed by the supervisor) and quarantine, a
 * request to the device process with a deadline, past which it is killed.
 */
import { readSync } from 'node:fs';
import type { Sys } from 'linux-sys';
import { MFD_CLOEXEC } from 'linux-sys';
import type { DmaPerm } from '../../drivers/contract/platform.js';
import { IommuDmaAllocator } from '../../dma/allocator.js';
import type { IommuBackend, IommuInfo, IovaRange } from '../../dma/backend.js';
import type { DmaMemory } from '../../dma/memory.js';
import { MemfdMemoryProvider, type MemfdMemory } from '../../dma/memfd.js';
import type { DriverKind } from '../../drivers/contract/driver.js';
import { deviceShape, FIRST_DEVICE_FD, QUARANTINE_DONE, type DeviceFault, type DeviceMapping, type DeviceShape, type DeviceStart } from '../abi/device.js';
import { SPARE_STORE_ENV } from '../abi/handover.js';
import type { Shared } from '../abi/shm.js';
import type { LogLevel } from '../abi/hypercall/index.js';
import type { Timers } from '../../common/timers.js';
import { SandboxError } from './errors.js';
import type { Policy } from '../../policies/types.js';
import { SandboxDevice } from './device.js';
import { DeviceProcess, deviceSpec, type DeviceProcessHooks } from './device-process.js';
import type { SpareSpec, TakenSpare } from './spare.js';
import type { Launcher } from './launcher.js';

export { windowAccess, type GrantedWindow, type WindowAccess } from './device.js';

/** The PCI address the simulated device gets (one device per sandbox machine). */
export const SIM_ADDRESS = '0000:00:01.0';

/**
 * The simulated IOMMU's address space as QEMU's VT-d reports it (sim/backend.ts: 4 KiB, 2 MiB and
 * 1 GiB pages, 39 bits, the x86 MSI window cut out, type1's 65535 mappings).
 */
const SIM_INFO: IommuInfo = {
  pageSizes: 0x40201000n,
  ranges: [
    { start: 0n, end: 0xfedfffffn },
    { start: 0xfef00000n, end: (1n << 39n) - 1n },
  ] as readonly IovaRange[],
  mappingsAvailable: 65535,
};

interface Mapping {
  memory: MemfdMemory;
  offset: number;
  iova: bigint;
  size: number;
  perm: DmaPerm;
  label: string;
}

/** The device's IOMMU domain as the manager keeps it: mappings recorded, to announce to each device process. */
class AnnouncedDomain implements IommuBackend {
  readonly name = 'sim-device-process';
  readonly mappings: Mapping[] = [];
  info(): IommuInfo {
    return { ...SIM_INFO, mappingsAvailable: SIM_INFO.mappingsAvailable! - this.mappings.length };
  }
  map(memory: DmaMemory, offset: number, iova: bigint, size: number, perm: DmaPerm): void {
    this.mappings.push({ memory: memory as MemfdMemory, offset, iova, size, perm, label: memory.label });
  }
  unmap(iova: bigint, size: number): void {
    const i = this.mappings.findIndex((m) => m.iova === iova && m.size === size);
    if (i >= 0) this.mappings.splice(i, 1);
  }
}

/** What the incarnation hands a new device process (its container's ends of the mailbox and interrupts). */
export interface DeviceProcessStart {
  mailbox: Shared;
  kickFd: number;
  irqFds: readonly number[];
  pollMs: number;
  heartbeatMs: number;
  readyTimeoutMs: number;
  clock: Timers;
  /** Who starts it (the manager's spawner after set-up). */
  launcher: Launcher;
  entry?: string;
  entryArgs?: readonly string[];
  /** A spare device process taken for this one (spare.ts). */
  spare?: TakenSpare;
  hooks: Pick<DeviceProcessHooks, 'log' | 'violation' | 'failed' | 'launched'>;
  /** A device fault plan in sim/faults' text form, passed in START (the device process checks it). */
  faultPlan?: string;
}

export type DeviceFaultListener = (f: DeviceFault & { device: string }) => void;

/** How long a device process has to answer QUARANTINE before it is killed. */
export const QUARANTINE_DEADLINE_MS = 2000;

export class SimDevice extends SandboxDevice {
  readonly kind = 'sim' as const;
  readonly address = SIM_ADDRESS;
  readonly description: string;
  readonly shape: DeviceShape;
  /** The current (or last) device process. */
  process: DeviceProcess | undefined;
  /** Device processes started. */
  processes = 0;
  private readonly model: DeviceStart['model'];
  private readonly domain = new AnnouncedDomain();
  private readonly dma: IommuDmaAllocator;
  private readonly storeFd: number | undefined;
  private readonly storeBytes: number = 0;
  private readonly faultListeners: DeviceFaultListener[] = [];
  private settling: Promise<void> = Promise.resolve();
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
    if (d.sim === 'e1000e') {
      this.model = { kind: 'e1000e', mac: d.mac, peer: d.peer };
    } else {
      const blocks = Math.floor(d.capacity / d.blockSize);
      this.model = { kind: 'nvme', serial: d.serial, blocks, blockSize: d.blockSize, mqes: d.mqes, maxQueues: d.maxQueues, storeFdSlot: 0 };
      // The namespace's media: a memfd of the manager's, handed to every device process.
      const fd = sys.memfdCreate(`dmabox-${policy.name}:namespace`, MFD_CLOEXEC);
      try {
        sys.ftruncate(fd, blocks * d.blockSize);
      } catch (e) {
        sys.close(fd);
        throw e;
      }
      this.storeFd = fd;
      this.storeBytes = blocks * d.blockSize;
    }
    this.shape = deviceShape(this.model);
    this.dma = new IommuDmaAllocator({
      backend: this.domain,
      memory: new MemfdMemoryProvider({ sys, hugePages: 'never', name: `dmabox-${policy.name}` }),
      name: this.description,
    });
    try {
      this.mapWindows(this.dma);
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
    return this.model.kind === 'e1000e' ? 'net' : 'block';
  }

  get irqCounts(): { msix: number; intx: number } {
    return { msix: this.shape.msix, intx: this.shape.intx };
  }

  barSizes(): number[] {
    return this.shape.bars.slice();
  }

  /** IOMMU and device faults the device process reports. */
  onDeviceFault(listener: DeviceFaultListener): void {
    this.faultListeners.push(listener);
  }

  /** The mappings every device process is told of (tests compare them with what the container got). */
  get mappings(): readonly { iova: bigint; size: number; perm: DmaPerm; label: string }[] {
    return this.domain.mappings;
  }

  /** The model's heap as a container's, plus the namespace's media it writes (memfd pages count where first touched). */
  private limits(): { memoryBytes: number; pids: number; cpuWeight: number } {
    return { memoryBytes: this.policy.container.memory + this.storeBytes, pids: this.policy.container.pids, cpuWeight: this.policy.container.cpuWeight };
  }

  /** How this device's process is launched (without fds): a spare device process is launched so (spare.ts). */
  spareSpec(entry?: string, entryArgs?: readonly string[]): SpareSpec {
    const spec = deviceSpec(this.policy.name, this.limits(), !this.policy.unconfined, entry, entryArgs);
    // The spare reserves the store's address range before it waits (sandbox/device/store-reservation.ts).
    if (this.storeBytes > 0) spec.env = { ...spec.env, [SPARE_STORE_ENV]: String(this.storeBytes) };
    return spec;
  }

  /**
   * A fresh device process for the next container: the mailbox and interrupt eventfds made for that
   * container, the window memfds and the store. A previous process still alive (its quarantine
   * unanswered) is killed first: two models never share the windows.
   */
  startProcess(o: DeviceProcessStart): DeviceProcess {
    if (this.released) throw new SandboxError('ERR_SANDBOX_STATE', `${this.description}: the device was released`);
    this.process?.kill();
    const fds: number[] = [];
    const slot = (fd: number): number => {
      fds.push(fd);
      return FIRST_DEVICE_FD + fds.length - 1;
    };
    const mailbox = { fdSlot: slot(o.mailbox.fd), bytes: o.mailbox.size, kickFdSlot: slot(o.kickFd) };
    const irqFdSlots = o.irqFds.map(slot);
    const memSlots = new Map<number, number>();
    const mappings: DeviceMapping[] = this.domain.mappings.map((m) => {
      let s = memSlots.get(m.memory.fd);
      if (s === undefined) memSlots.set(m.memory.fd, (s = slot(m.memory.fd)));
      return {
        iova: `0x${m.iova.toString(16)}`,
        size: m.size,
        offset: m.offset,
        memfdSize: m.memory.bytes.length,
        read: m.perm.read,
        write: m.perm.write,
        fdSlot: s,
        label: m.label,
      };
    });
    const model = this.model.kind === 'nvme' ? { ...this.model, storeFdSlot: slot(this.storeFd!) } : this.model;
    const start: DeviceStart = {
      name: this.policy.name,
      address: this.address,
      model,
      mailbox,
      irqFdSlots,
      mappings,
      heartbeatMs: o.heartbeatMs,
      seccomp: this.policy.unconfined ? 'none' : 'device',
      pollMs: o.pollMs,
      ...(o.faultPlan === undefined ? {} : { faultPlan: o.faultPlan }),
    };
    const p = new DeviceProcess({
      start,
      fds,
      clock: o.clock,
      readyTimeoutMs: o.readyTimeoutMs,
      sys: this.sys,
      launcher: o.launcher,
      sandbox: this.policy.name,
      limits: this.limits(),
      confined: !this.policy.unconfined,
      ...(o.entry ? { entry: o.entry } : {}),
      ...(o.entryArgs ? { entryArgs: o.entryArgs } : {}),
      ...(o.spare ? { spare: o.spare } : {}),
      hooks: {
        ready: () => undefined,
        launched: (l) => o.hooks.launched(l),
        fault: (f) => {
          for (const l of this.faultListeners) l({ ...f, device: this.address });
        },
        log: (level: LogLevel, text: string) => o.hooks.log(level, text),
        violation: (reason) => o.hooks.violation(reason),
        // Only the current device process speaks for the function: an error from one being quarantined is old news.
        deviceError: (cause) => {
          if (this.process === p) this.deviceErrorRaised(cause);
        },
        failed: (reason) => o.hooks.failed(reason),
      },
    });
    this.process = p;
    this.processes++;
    return p;
  }

  /**
   * Between containers: the device process is asked for bus mastering off, interrupts off and a
   * function-level reset, then released; no answer within QUARANTINE_DEADLINE_MS, or no live
   * process: it is killed (a dead model does no DMA). `settled()` resolves when that is done.
   */
  quarantine(): void {
    const p = this.process;
    if (!p) return;
    let quiet!: () => void;
    this.quieting = new Promise<void>((r) => (quiet = r));
    this.settling = p.quarantine(QUARANTINE_DEADLINE_MS).then(async (r) => {
      if (r.killed) this.quarantineLog.push('killed');
      else {
        if (r.done & QUARANTINE_DONE.BME_OFF) this.quarantineLog.push('bme-off');
        if (r.done & QUARANTINE_DONE.FLR) this.quarantineLog.push('flr');
        // Bus mastering off and reset, as answered: the model does no more DMA.
        if (r.done & QUARANTINE_DONE.BME_OFF) quiet();
      }
      await p.whenExited();
      quiet();
    });
  }

  private quieting: Promise<void> = Promise.resolve();

  /**
   * Resolves once the last quarantine's device process does no more DMA: it answered with bus
   * mastering off, or it is gone. A new device process may map the windows from then on (starting
   * one kills the old process if it has not exited yet).
   */
  quiesced(): Promise<void> {
    return this.quieting;
  }

  /** Resolves once the last quarantine finished and its device process is gone. */
  settled(): Promise<void> {
    return this.settling;
  }

  /** Status: the device process (pid, uptime, its counters). */
  processStatus(clock: Timers): Record<string, unknown> | null {
    const p = this.process;
    if (!p) return null;
    return {
      pid: p.alive ? (p.pid ?? null) : null,
      ready: p.isReady,
      started: this.processes,
      uptimeMs: p.alive ? clock.wall() - p.startedAt : 0,
      counters: p.counters,
    };
  }

  /**
   * Bytes of the NVMe namespace's media as they are now (what any later device process would
   * read): a campaign's oracle reads acknowledged writes back here when the device has failed and
   * no container is left to ask. Undefined for a NIC or once released.
   */
  readMedia(offset: number, length: number): Uint8Array | undefined {
    if (this.storeFd === undefined || this.released || offset < 0 || offset + length > this.storeBytes) return undefined;
    const out = new Uint8Array(length);
    let done = 0;
    while (done < length) {
      const n = readSync(this.storeFd, out, done, length - done, offset + done);
      if (n <= 0) break;
      done += n;
    }
    return out;
  }

  /** Kill any device process, free every window and the store. Idempotent. */
  release(): void {
    if (this.released) return;
    this.released = true;
    this.process?.kill();
    this.quarantineLog.push('unmap');
    this.dma.close();
    if (this.storeFd !== undefined) this.sys.close(this.storeFd);
    this.closeIrqFds();
  }
}
