/**
 * The NVM command set of the simulated controller (NVMe 1.4 §6): Read, Write, Flush, Write Zeroes
 * and Dataset Management (deallocate), with the status codes the spec gives for bad namespaces,
 * LBA ranges, transfer sizes and PRPs. Data moves between a namespace's store and host memory
 * through the PRP walker, which goes through the IOMMU: a refused page is a Data Transfer Error.
 */
import type { DeviceDma } from '../dma.js';
import { DSM_AD, DSM_RANGE, NvmOpcode } from '../../spec/nvme/commands.js';
import { GenericSc, Sct, statusOf } from '../../drivers/nvme/status.js';
import { PrpResult, type PrpWalker } from './prp.js';
import type { SimNamespace } from './controller.js';

const TWO32 = 0x1_0000_0000;
const INVALID_OPCODE = statusOf(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE, true);
const INVALID_FIELD = statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
const INVALID_NS = statusOf(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT, true);
const LBA_RANGE = statusOf(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE, true);
const TRANSFER = statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR);
const PRP_OFFSET = statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);

export class NvmEngine {
  private readonly dma: DeviceDma;
  private readonly prp: PrpWalker;
  private readonly ns: SimNamespace[];
  private readonly maxTransfer: number;
  /** False: the null data path (commands are checked and completed, no bytes move). */
  copyData: boolean;
  private readonly scratch: Uint8Array;
  private readonly dsm = new Uint8Array(DSM_RANGE.SIZE * DSM_RANGE.MAX_RANGES);
  private readonly dsmView = new DataView(this.dsm.buffer);
  private readonly stats: { dataTransferErrors: number; fuaWrites: number };

  constructor(dma: DeviceDma, prp: PrpWalker, ns: SimNamespace[], maxTransfer: number, copyData: boolean, stats: { dataTransferErrors: number; fuaWrites: number }) {
    this.dma = dma;
    this.prp = prp;
    this.ns = ns;
    this.maxTransfer = maxTransfer;
    this.copyData = copyData;
    this.scratch = new Uint8Array(maxTransfer);
    this.stats = stats;
  }

  /** Execute one command (the 16 dwords of its SQE); returns the 15-bit status. */
  execute(d: Uint32Array): number {
    const opc = d[0]! & 0xff;
    const ns = this.ns[d[1]! - 1];
    if (opc !== NvmOpcode.READ && opc !== NvmOpcode.WRITE && opc !== NvmOpcode.FLUSH && opc !== NvmOpcode.WRITE_ZEROES && opc !== NvmOpcode.DATASET_MANAGEMENT) {
      return INVALID_OPCODE;
    }
    // Flush may name all namespaces (NSID FFFFFFFFh, §6.8).
    if (opc === NvmOpcode.FLUSH) return ns !== undefined || d[1] === 0xffffffff ? 0 : INVALID_NS;
    if (ns === undefined) return INVALID_NS;
    if (opc === NvmOpcode.DATASET_MANAGEMENT) return this.dataset(ns, d);
    const slba = d[10]! + d[11]! * TWO32;
    const nlb = (d[12]! & 0xffff) + 1;
    if (slba + nlb > ns.blocks) return LBA_RANGE;
    if (opc === NvmOpcode.WRITE_ZEROES) {
      ns.store.zero(slba * ns.blockSize, nlb * ns.blockSize);
      return 0;
    }
    const bytes = nlb << ns.blockShift;
    if (bytes > this.maxTransfer) return INVALID_FIELD; // beyond MDTS (§5.15.2.2)
    // FUA (CDW12 bit 30, §6.15): the model has no volatile cache to bypass (Flush is a no-op), so
    // a completed write is durable anyway; counted, so tests can see what the driver asked for.
    if (opc === NvmOpcode.WRITE && (d[12]! & 0x4000_0000) !== 0) this.stats.fuaWrites++;
    if (!this.copyData) return 0;
    const r = this.prp.walk(d[6]! + d[7]! * TWO32, d[8]! + d[9]! * TWO32, bytes);
    if (r === PrpResult.BAD_OFFSET) return PRP_OFFSET;
    if (r !== PrpResult.OK) return this.transferError();
    const pos = slba * ns.blockSize;
    const store = ns.store;
    if (opc === NvmOpcode.READ) {
      if (store.bytes !== undefined) return this.prp.toHost(store.bytes, pos) ? 0 : this.transferError();
      store.read(pos, this.scratch, 0, bytes);
      return this.prp.toHost(this.scratch, 0) ? 0 : this.transferError();
    }
    // Write: fetch everything first, so a refused page leaves the store untouched.
    if (!this.prp.fromHost(this.scratch, 0)) return this.transferError();
    store.write(pos, this.scratch, 0, bytes);
    return 0;
  }

  /** Dataset Management (§6.7): NR + 1 ranges read from host memory; AD deallocates (reads return zeroes). */
  private dataset(ns: SimNamespace, d: Uint32Array): number {
    const nr = (d[10]! & 0xff) + 1;
    const len = nr * DSM_RANGE.SIZE;
    const r = this.prp.walk(d[6]! + d[7]! * TWO32, d[8]! + d[9]! * TWO32, len);
    if (r === PrpResult.BAD_OFFSET) return PRP_OFFSET;
    if (r !== PrpResult.OK || !this.prp.fromHost(this.dsm, 0)) return this.transferError();
    const v = this.dsmView;
    for (let i = 0; i < nr; i++) {
      const nlb = v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.NLB, true);
      const slba = v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.SLBA, true) + v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.SLBA + 4, true) * TWO32;
      if (slba + nlb > ns.blocks) return LBA_RANGE;
    }
    if ((d[11]! & DSM_AD) !== 0) {
      for (let i = 0; i < nr; i++) {
        const nlb = v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.NLB, true);
        const slba = v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.SLBA, true) + v.getUint32(i * DSM_RANGE.SIZE + DSM_RANGE.SLBA + 4, true) * TWO32;
        ns.store.zero(slba * ns.blockSize, nlb * ns.blockSize);
      }
    }
    return 0;
  }

  private transferError(): number {
    this.stats.dataTransferErrors++;
    return TRANSFER;
  }
}
