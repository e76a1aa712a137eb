/**
 * Shared pieces of the VFIO lab tests (they run INSIDE the lab guest, appliance/lab): find the
 * devices by vendor:device id through vfio-bindings' sysfs helpers, open the container/group/device
 * stack, DMA memory from a memfd, the guest kernel log, and QEMU's DMAR trace.
 */
import { closeSync, constants, openSync, readFileSync, readSync } from 'node:fs';
import { Container, Device, findPciFunctions, Group, type PciFunction } from 'vfio-bindings';
import { defaultSys, MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from 'linux-sys';
import { parseDmarTrace, type DmarFault } from '../../../appliance/lab/dmar.js';

export function inLab(): void {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
  }
}

/** QEMU's NVMe (PCI ids 1b36:0010) and e1000e (8086:10d3, the 82574L). */
export const NVME_IDS = { vendor: 0x1b36, device: 0x0010 } as const;
export const E1000E_IDS = { vendor: 0x8086, device: 0x10d3 } as const;

/** The one function with these ids, which must be on vfio-pci and in an IOMMU group. */
export function findOne(ids: { vendor: number; device: number }): PciFunction & { iommuGroup: number } {
  const found = findPciFunctions(ids.vendor, ids.device);
  const name = `${ids.vendor.toString(16).padStart(4, '0')}:${ids.device.toString(16).padStart(4, '0')}`;
  if (found.length === 0) throw new Error(`no PCI function ${name} in the lab guest`);
  const f = found[0]!;
  if (f.driver !== 'vfio-pci') throw new Error(`${f.address} (${name}) is bound to ${f.driver ?? 'no driver'}, not vfio-pci`);
  if (f.iommuGroup === undefined) throw new Error(`${f.address} (${name}) has no IOMMU group`);
  return f as PciFunction & { iommuGroup: number };
}

export interface Stack {
  container: Container;
  group: Group;
  device: Device;
  close(): void;
}

/** Container + group + device, type1v2 set: the manager's side. close() closes in order. */
export function openStack(fn: { address: string; iommuGroup: number }): Stack {
  const container = Container.open();
  let group: Group | undefined;
  try {
    group = Group.open(fn.iommuGroup);
    group.setContainer(container);
    container.setIommu();
    const device = group.device(fn.address);
    const g = group;
    return { container, group: g, device, close: () => container.close() };
  } catch (e) {
    group?.close();
    container.close();
    throw e;
  }
}

/** Page-aligned shared memory from a memfd, for DMA windows (the fd can be handed to a child). */
export class DmaMemory {
  readonly fd: number;
  readonly vaddr: bigint;
  readonly bytes: Uint8Array;
  readonly size: number;
  private closed = false;

  constructor(size: number) {
    const sys = defaultSys();
    this.size = size;
    this.fd = sys.memfdCreate('dmabox-lab-dma', MFD_CLOEXEC);
    sys.ftruncate(this.fd, size);
    this.vaddr = sys.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, this.fd, 0n);
    this.bytes = new Uint8Array(sys.view(this.vaddr, size));
  }

  /** The CPU view of [offset, offset + len). */
  at(offset: number, len: number): Uint8Array {
    return this.bytes.subarray(offset, offset + len);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    const sys = defaultSys();
    sys.munmap(this.vaddr, this.size);
    sys.close(this.fd);
  }
}

export const sleepMs = (ms: number): void => {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
};

/** The guest kernel's log, read through /dev/kmsg from the moment of opening. */
export class KernelLog {
  private readonly fd: number;
  private readonly buf = Buffer.alloc(8192);

  constructor() {
    this.fd = openSync('/dev/kmsg', constants.O_RDONLY | constants.O_NONBLOCK);
    this.drain(); // skip what is already there
  }

  /** Records written since the last call (message text only). */
  drain(): string[] {
    const out: string[] = [];
    for (;;) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, null);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EAGAIN') return out;
        if (code === 'EPIPE') continue; // records overwritten while we read: go on from the oldest left
        throw e;
      }
      const rec = this.buf.toString('utf8', 0, n);
      out.push(rec.slice(rec.indexOf(';') + 1).split('\n')[0]!);
    }
  }

  /** Wait (bounded) for a record matching `re`; returns it, or undefined after `ms`. */
  waitFor(re: RegExp, ms: number): string | undefined {
    const end = Date.now() + ms;
    for (;;) {
      const hit = this.drain().find((l) => re.test(l));
      if (hit) return hit;
      if (Date.now() > end) return undefined;
      sleepMs(100);
    }
  }

  close(): void {
    closeSync(this.fd);
  }
}

/** QEMU's vtd_dmar_fault trace (the lab suite always turns it on). */
export function dmarFaults(): DmarFault[] {
  const trace = process.env.DMABOX_LAB_DMAR_TRACE;
  if (!trace) throw new Error('DMABOX_LAB_DMAR_TRACE is not set: run with the lab suite or `dmabox lab run --trace-dmar`');
  return parseDmarTrace(readFileSync(trace, 'utf8'));
}

/** Faults in the 4 KiB page at `page`. */
export function faultsInPage(page: bigint): DmarFault[] {
  return dmarFaults().filter((x) => x.addr >= page && x.addr < page + 0x1000n);
}

/** Wait (bounded) until the trace holds more than `before` faults in the page at `page`; returns those. */
export function waitDmarFaults(page: bigint, before: number, ms: number): DmarFault[] {
  const end = Date.now() + ms;
  for (;;) {
    const f = faultsInPage(page);
    if (f.length > before || Date.now() > end) return f;
    sleepMs(50);
  }
}
