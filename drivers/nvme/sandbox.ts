/**
 * The NVMe driver as a driver module (drivers/contract/driver.ts), `kind: 'block'`: what the block
 * service of a driver container serves. `start` opens the controller on the container's Platform
 * and returns a BlockDevice that moves each request straight between the device and the tag's
 * buffer in the service's data areas: each command's PRPs point into that buffer (NVMe 1.4 §4.3),
 * so the device reads write data from, and writes read data into, memory the manager shares, and
 * nobody copies in between. Each tag has two PRP lists (one per direction), filled once at start
 * in a device-read-only window, so nothing is built per I/O. Each command goes through
 * Namespace.transferPrps: submission, completion, timeouts, aborts and resets are the driver's.
 */
import { DEVICE_READS } from '../contract/platform.js';
import { DRIVER_CONTRACT, type DriverContext, type DriverFault } from '../contract/driver.js';
import type { BlockDataAreas, BlockDevice, BlockServiceParams } from '../contract/block.js';
import { NvmOpcode } from '../../spec/nvme/commands.js';
import { ONCS_DSM, ONCS_WRITE_ZEROES } from '../../spec/nvme/identify.js';
import { Prp2, prp2Use, PRP_ENTRY_BYTES as PRP_ENTRY } from '../../spec/nvme/prp.js';
import { GenericSc, Sct } from '../../spec/nvme/status.js';
import { putPrpEntry } from '../kit/prp.js';
import { NvmeArgumentError, NvmeController, NvmeControllerError, type Namespace } from './index.js';

export const contract = DRIVER_CONTRACT;
export const name = 'nvme';
export const kind = 'block';

const PAGE = 4096;

/** The block service's device over one NVMe namespace, data DMA'd in place. */
export class NvmeBlockDevice implements BlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  /** Bytes per command: MDTS and the slot, whole pages. */
  readonly chunkBytes: number;
  /** Every NVM Write takes FUA (NVMe 1.4 §6.15, CDW12 bit 30). */
  readonly fua = true;
  /** Dataset Management with Deallocate (NVMe 1.4 §6.7), when ONCS offers it; undefined otherwise. */
  readonly discard: ((lba: number, blocks: number) => Promise<void>) | undefined;
  /** Write Zeroes (§6.16), deallocating unless `noHole`, when ONCS offers it; undefined otherwise. */
  readonly writeZeroes: ((lba: number, blocks: number, noHole: boolean) => Promise<void>) | undefined;
  private readonly listBase: number;
  private readonly area: { read: number; write: number };
  private readonly slotBytes: number;

  constructor(
    readonly ctrl: NvmeController,
    readonly ns: Namespace,
    areas: BlockDataAreas,
    private readonly queues: number,
  ) {
    this.blockSize = ns.blockSize;
    this.blockCount = ns.blockCount;
    this.slotBytes = areas.slotBytes;
    this.chunkBytes = Math.floor(Math.min(ctrl.mdtsBytes, areas.slotBytes) / PAGE) * PAGE;
    if (this.chunkBytes < this.blockSize) {
      throw new NvmeArgumentError(
        `a ${this.blockSize}-byte block does not fit one command of ${this.chunkBytes} bytes`,
        'use a namespace with a smaller LBA format, or larger block ring slots',
      );
    }
    this.area = { read: Number(areas.read), write: Number(areas.write) };
    const oncs = ctrl.identify.oncs;
    this.discard = (oncs & ONCS_DSM) !== 0 ? (lba, blocks) => ns.discard(lba, blocks) : undefined;
    this.writeZeroes = (oncs & ONCS_WRITE_ZEROES) !== 0 ? (lba, blocks, noHole) => ns.writeZeroes(lba, blocks, { deallocate: !noHole }) : undefined;
    const pages = areas.slotBytes / PAGE;
    // One list page per tag and direction: entry k is page k + 1 of the tag's buffer (<= 511 entries).
    const lists = ctrl.platform.dma.alloc(2 * areas.entries * PAGE, DEVICE_READS, { label: 'block ring prp lists' });
    this.listBase = Number(lists.iova);
    for (let t = 0; t < areas.entries; t++) {
      for (let k = 0; k + 1 < pages; k++) {
        const r = this.area.read + t * areas.slotBytes + (k + 1) * PAGE;
        const w = this.area.write + t * areas.slotBytes + (k + 1) * PAGE;
        putPrpEntry(lists.view, 2 * t * PAGE + PRP_ENTRY * k, r);
        putPrpEntry(lists.view, (2 * t + 1) * PAGE + PRP_ENTRY * k, w);
      }
    }
  }

  read(tag: number, lba: number, blocks: number): Promise<void> {
    return this.transfer(NvmOpcode.READ, this.area.read, 2 * tag, tag, lba, blocks);
  }

  write(tag: number, lba: number, blocks: number, fua: boolean): Promise<void> {
    return this.transfer(NvmOpcode.WRITE, this.area.write, 2 * tag + 1, tag, lba, blocks, fua);
  }

  flush(): Promise<void> {
    return this.ns.flush();
  }

  /**
   * A data transfer error (NVMe 1.4 §4.6.1.2.1, generic status 0x04: what a device reports when
   * the IOMMU refused its DMA) or a timeout is a fault the manager should see next to its IOMMU log.
   */
  faultOf(error: unknown): DriverFault | undefined {
    const e = error as { code?: string; sct?: number; sc?: number } | null;
    if (e?.code === 'ERR_NVME_STATUS' && e.sct === Sct.GENERIC && e.sc === GenericSc.DATA_TRANSFER_ERROR)
      return { kind: 'dma', code: GenericSc.DATA_TRANSFER_ERROR, iova: 0n };
    if (e?.code === 'ERR_NVME_TIMEOUT') return { kind: 'timeout', code: 0, iova: 0n };
    return undefined;
  }

  describe(): string {
    return `${this.ctrl.describe()}: ${this.blockCount} blocks of ${this.blockSize} bytes, ${this.queues} queue(s), ${this.chunkBytes / 1024} KiB per command, data DMA'd in place`;
  }

  async close(): Promise<void> {
    try {
      await this.ctrl.close();
    } catch {
      /* the manager quarantines the device anyway */
    }
    this.ctrl.platform.close();
  }

  /**
   * PRP2 for `length` bytes from the page-aligned `prp1` (NVMe 1.4 §4.3): unused, the next page,
   * or the tag's list from the entry of the page after `prp1` (the list was filled at start).
   */
  private prp2(prp1: number, length: number, listPage: number, offsetInSlot: number): number {
    const use = prp2Use(0, length, PAGE);
    if (use === Prp2.UNUSED) return 0;
    if (use === Prp2.PAGE) return prp1 + PAGE;
    return this.listBase + listPage * PAGE + PRP_ENTRY * (offsetInSlot / PAGE);
  }

  private transfer(
    opcode: typeof NvmOpcode.READ | typeof NvmOpcode.WRITE,
    area: number,
    listPage: number,
    tag: number,
    lba: number,
    blocks: number,
    fua = false,
  ): Promise<void> {
    const bs = this.blockSize,
      per = this.chunkBytes / bs;
    const base = area + tag * this.slotBytes;
    // Each chunk starts page-aligned in the tag's buffer; its list entries are the buffer's later pages.
    if (blocks <= per) return this.ns.transferPrps(opcode, lba, blocks, base, this.prp2(base, blocks * bs, listPage, 0), fua);
    const parts: Promise<void>[] = [];
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      const off = done * bs;
      const prp1 = base + off;
      parts.push(this.ns.transferPrps(opcode, lba + done, n, prp1, this.prp2(prp1, n * bs, listPage, off), fua));
    }
    return Promise.all(parts).then(() => undefined);
  }
}

/** Open the controller on the container's Platform and serve its first namespace over the data areas. */
export async function openNvme(ctx: DriverContext<BlockServiceParams>): Promise<NvmeBlockDevice> {
  const { platform, options } = ctx;
  // Block data moves through the service's data areas, so the driver's own per-slot buffers (used
  // only by its Promise API) are one page each.
  const ctrl = await NvmeController.open(platform, {
    queues: options.queues,
    queueEntries: options.depth,
    bufferBytes: PAGE,
    interrupts: options.interrupts === 'msix' ? 'msix' : 'poll',
    ...(options.timeoutMs === undefined ? {} : { ioTimeoutMs: options.timeoutMs, adminTimeoutMs: options.timeoutMs }),
    log: (m) => ctx.log('warn', m),
  });
  try {
    const ns = ctrl.namespaces[0];
    if (!ns)
      throw new NvmeControllerError(
        'ERR_NVME_UNSUPPORTED',
        `${platform.name}: the controller has no active namespace`,
        'create and attach a namespace (NVMe 1.4 §5.22) before sandboxing the controller',
      );
    return new NvmeBlockDevice(ctrl, ns, ctx.service.areas, options.queues);
  } catch (e) {
    await ctrl.close().catch(() => undefined);
    throw e;
  }
}

export function start(ctx: DriverContext<BlockServiceParams>): Promise<BlockDevice> {
  return openNvme(ctx);
}
