/**
 * Block I/O for the ring (block/server.ts) straight between the NVMe device and the ring's data
 * areas in the DMA windows: each command's PRPs point into the tag's buffer (NVMe 1.4 §4.3), so
 * the device reads write data from, and writes read data into, memory the manager shares; nobody
 * copies in between. Each tag has two PRP lists (one per direction), filled once at start in a
 * device-read-only window, so nothing is built per I/O. Each command goes through
 * Namespace.transferPrps: submission, completion, timeouts, aborts and resets are the driver's.
 */
import { DEVICE_READS, type DmaAllocator } from '../../drivers/contract/platform.js';
import { NvmOpcode } from '../../spec/nvme/commands.js';
import { ONCS_DSM, ONCS_WRITE_ZEROES } from '../../spec/nvme/identify.js';
import type { NvmeController, Namespace } from '../../drivers/nvme/index.js';
import type { DataAreas, RingGeometry } from '../abi/block.js';
import type { DirectBlockDevice } from './services/block.js';

const PAGE = 4096;

export class NvmeDirect implements DirectBlockDevice {
  readonly blockSize: number;
  readonly blockCount: number;
  /** Bytes per command: MDTS and the slot, whole pages. */
  readonly chunkBytes: number;
  private readonly listBase: number;
  private readonly area: { read: number; write: number };

  constructor(ctrl: NvmeController, private readonly ns: Namespace, areas: DataAreas<bigint>, private readonly g: RingGeometry, dma: DmaAllocator) {
    this.blockSize = ns.blockSize;
    this.blockCount = ns.blockCount;
    this.chunkBytes = Math.floor(Math.min(ctrl.mdtsBytes, g.slotBytes) / PAGE) * PAGE;
    if (this.chunkBytes < this.blockSize) throw new RangeError(`a ${this.blockSize}-byte block does not fit one command of ${this.chunkBytes} bytes`);
    this.area = { read: Number(areas.read), write: Number(areas.write) };
    const oncs = ctrl.identify.oncs;
    this.discard = (oncs & ONCS_DSM) !== 0 ? (lba, blocks) => ns.discard(lba, blocks) : undefined;
    this.writeZeroes = (oncs & ONCS_WRITE_ZEROES) !== 0 ? (lba, blocks, noHole) => ns.writeZeroes(lba, blocks, { deallocate: !noHole }) : undefined;
    const pages = g.slotBytes / PAGE;
    // One list page per tag and direction: entry k is page k + 1 of the tag's buffer (<= 511 entries).
    const lists = dma.alloc(2 * g.entries * PAGE, DEVICE_READS, { label: 'block ring prp lists' });
    this.listBase = Number(lists.iova);
    for (let t = 0; t < g.entries; t++) {
      for (let k = 0; k + 1 < pages; k++) {
        const r = this.area.read + t * g.slotBytes + (k + 1) * PAGE;
        const w = this.area.write + t * g.slotBytes + (k + 1) * PAGE;
        lists.view.setBigUint64(2 * t * PAGE + 8 * k, BigInt(r), true);
        lists.view.setBigUint64((2 * t + 1) * PAGE + 8 * k, BigInt(w), true);
      }
    }
  }

  read(tag: number, lba: number, blocks: number): Promise<void> {
    return this.transfer(NvmOpcode.READ, this.area.read, 2 * tag, tag, lba, blocks);
  }

  /** Every NVM Write takes FUA (NVMe 1.4 §6.15, CDW12 bit 30). */
  readonly fua = true;

  write(tag: number, lba: number, blocks: number, fua: boolean): Promise<void> {
    return this.transfer(NvmOpcode.WRITE, this.area.write, 2 * tag + 1, tag, lba, blocks, fua);
  }

  flush(): Promise<void> {
    return this.ns.flush();
  }

  /** Dataset Management with Deallocate (NVMe 1.4 §6.7), when ONCS offers it; undefined otherwise. */
  readonly discard: ((lba: number, blocks: number) => Promise<void>) | undefined;
  /** Write Zeroes (§6.16), deallocating unless `noHole`, when ONCS offers it; undefined otherwise. */
  readonly writeZeroes: ((lba: number, blocks: number, noHole: boolean) => Promise<void>) | undefined;

  private transfer(opcode: typeof NvmOpcode.READ | typeof NvmOpcode.WRITE, area: number, listPage: number, tag: number, lba: number, blocks: number, fua = false): Promise<void> {
    const bs = this.blockSize, per = this.chunkBytes / bs;
    const base = area + tag * this.g.slotBytes;
    const parts: Promise<void>[] = [];
    for (let done = 0; done < blocks; done += per) {
      const n = Math.min(per, blocks - done);
      const off = done * bs;
      const pages = Math.ceil((n * bs) / PAGE);
      const prp1 = base + off;
      const prp2 = pages === 1 ? 0 : pages === 2 ? prp1 + PAGE : this.listBase + listPage * PAGE + 8 * (off / PAGE);
      parts.push(this.ns.transferPrps(opcode, lba + done, n, prp1, prp2, fua));
    }
    return parts.length === 1 ? parts[0]! : Promise.all(parts).then(() => undefined);
  }
}
