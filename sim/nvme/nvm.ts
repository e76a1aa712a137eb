/**
 * The NVM command set of the simulated controller (NVMe 1.4 §6): Read, Write, Flush, Write Zeroes
 * and Dataset Management (deallocate), with the status codes the spec gives for bad namespaces,
 * LBA ranges, transfer sizes and PRPs. Data moves between a namespace's store and host memory
 * through the PRP walker, which goes through the IOMMU: a refused page is a Data Transfer Error.
 */
import { DSM, DSM_MAX_RANGES, DSM_RANGE, NSID_ALL, NvmOpcode, RW_CDW12 } from '../../spec/nvme/commands.js';
import { dword, SQE } from '../../spec/nvme/queue.js';
import { GenericSc, Sct, statusOf } from '../../spec/nvme/status.js';
import { PrpResult, type PrpWalker } from './prp.js';
import type { SimNamespace, SimNvmeStats } from './config.js';
import { opcodeOf } from './queues.js';

const TWO32 = 0x1_0000_0000;
const NSID = dword(SQE.NSID);
const PRP1 = dword(SQE.PRP1);
const PRP2 = dword(SQE.PRP2);
/** Read, Write and Write Zeroes: Starting LBA in CDW10 (low) and CDW11 (high), NLB in CDW12. */
const SLBA = dword(SQE.CDW10);
const CDW10 = dword(SQE.CDW10);
const CDW11 = dword(SQE.CDW11);
const CDW12 = dword(SQE.CDW12);
const NLB_MASK = RW_CDW12.NLB.mask;
const FUA = RW_CDW12.FUA.mask;
const NR_MASK = DSM.CDW10.NR.mask;
const AD = DSM.CDW11.AD.mask;
const INVALID_OPCODE = statusOf(Sct.GENERIC, GenericSc.INVALID_COMMAND_OPCODE, true);
const INVALID_FIELD = statusOf(Sct.GENERIC, GenericSc.INVALID_FIELD, true);
const INVALID_NS = statusOf(Sct.GENERIC, GenericSc.INVALID_NAMESPACE_OR_FORMAT, true);
const LBA_RANGE = statusOf(Sct.GENERIC, GenericSc.LBA_OUT_OF_RANGE, true);
const TRANSFER = statusOf(Sct.GENERIC, GenericSc.DATA_TRANSFER_ERROR);
const PRP_OFFSET = statusOf(Sct.GENERIC, GenericSc.INVALID_PRP_OFFSET, true);

export class NvmEngine {
  private readonly prp: PrpWalker;
  private readonly ns: readonly SimNamespace[];
  private readonly maxTransfer: number;
  /** False: the null data path (commands are checked and completed, no bytes move). */
  copyData: boolean;
  private readonly scratch: Uint8Array;
  private readonly dsm = new Uint8Array(DSM_RANGE.size * DSM_MAX_RANGES);
  private readonly dsmView = new DataView(this.dsm.buffer);
  private readonly stats: SimNvmeStats;
  /** Dataset Management ranges to deallocate, sorted and merged (preallocated: at most 256). */
  private readonly mergeStart = new Float64Array(DSM_MAX_RANGES);
  private readonly mergeEnd = new Float64Array(DSM_MAX_RANGES);
  /**
   * Bytes the last command moved or zeroed: what the queue engine charges against its per-run
   * byte budget (sim/nvme/queues.ts), so a run of large commands ends early.
   */
  cost = 0;

  constructor(prp: PrpWalker, ns: readonly SimNamespace[], maxTransfer: number, copyData: boolean, stats: SimNvmeStats) {
    this.prp = prp;
    this.ns = ns;
    this.maxTransfer = maxTransfer;
    this.copyData = copyData;
    this.scratch = new Uint8Array(maxTransfer);
    this.stats = stats;
  }

  /** Execute one command (the 16 dwords of its SQE); returns the 15-bit status. */
  execute(d: Uint32Array): number {
    this.cost = 0;
    const opc = opcodeOf(d);
    const nsid = d[NSID]!;
    const ns = this.ns[nsid - 1];
    if (
      opc !== NvmOpcode.READ &&
      opc !== NvmOpcode.WRITE &&
      opc !== NvmOpcode.FLUSH &&
      opc !== NvmOpcode.WRITE_ZEROES &&
      opc !== NvmOpcode.DATASET_MANAGEMENT
    ) {
      return INVALID_OPCODE;
    }
    // Flush may name all namespaces (NSID FFFFFFFFh, §6.8).
    if (opc === NvmOpcode.FLUSH) return ns !== undefined || nsid === NSID_ALL ? 0 : INVALID_NS;
    if (ns === undefined) return INVALID_NS;
    if (opc === NvmOpcode.DATASET_MANAGEMENT) return this.dataset(ns, d);
    const slba = d[SLBA]! + d[SLBA + 1]! * TWO32;
    const nlb = (d[CDW12]! & NLB_MASK) + 1;
    if (slba + nlb > ns.blocks) return LBA_RANGE;
    if (opc === NvmOpcode.WRITE_ZEROES) {
      this.cost = nlb * ns.blockSize;
      ns.store.zero(slba * ns.blockSize, this.cost);
      return 0;
    }
    const bytes = nlb << ns.blockShift;
    if (bytes > this.maxTransfer) return INVALID_FIELD; // beyond MDTS (§5.15.2.2)
    // FUA (CDW12 bit 30, §6.15): the model has no volatile cache to bypass (Flush is a no-op), so
    // a completed write is durable anyway; counted, so tests can see what the driver asked for.
    if (opc === NvmOpcode.WRITE && (d[CDW12]! & FUA) !== 0) this.stats.fuaWrites++;
    if (!this.copyData) return 0;
    this.cost = bytes;
    const r = this.prp.walk(d[PRP1]! + d[PRP1 + 1]! * TWO32, d[PRP2]! + d[PRP2 + 1]! * TWO32, bytes);
    if (r !== PrpResult.OK) return this.prpError(r);
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
    const nr = (d[CDW10]! & NR_MASK) + 1;
    const len = nr * DSM_RANGE.size;
    const r = this.prp.walk(d[PRP1]! + d[PRP1 + 1]! * TWO32, d[PRP2]! + d[PRP2 + 1]! * TWO32, len);
    if (r !== PrpResult.OK) return this.prpError(r);
    if (!this.prp.fromHost(this.dsm, 0)) return this.transferError();
    for (let i = 0; i < nr; i++) if (this.rangeStart(i) + this.rangeBlocks(i) > ns.blocks) return LBA_RANGE;
    if ((d[CDW11]! & AD) !== 0) {
      // Overlapping ranges are zeroed once: the work is bounded by the namespace, not by 256 x its size.
      const n = this.mergeRanges(nr);
      for (let i = 0; i < n; i++) {
        const len = (this.mergeEnd[i]! - this.mergeStart[i]!) * ns.blockSize;
        ns.store.zero(this.mergeStart[i]! * ns.blockSize, len);
        this.cost += len;
      }
    }
    return 0;
  }

  /** Sort the fetched ranges by start (insertion sort: at most 256) and merge overlapping ones; returns how many remain. */
  private mergeRanges(nr: number): number {
    const s = this.mergeStart,
      e = this.mergeEnd;
    let n = 0;
    for (let i = 0; i < nr; i++) {
      const blocks = this.rangeBlocks(i);
      if (blocks === 0) continue;
      const start = this.rangeStart(i);
      let j = n++;
      while (j > 0 && s[j - 1]! > start) {
        s[j] = s[j - 1]!;
        e[j] = e[j - 1]!;
        j--;
      }
      s[j] = start;
      e[j] = start + blocks;
    }
    let m = 0;
    for (let i = 0; i < n; i++) {
      if (m > 0 && s[i]! <= e[m - 1]!) {
        if (e[i]! > e[m - 1]!) e[m - 1] = e[i]!;
      } else {
        s[m] = s[i]!;
        e[m] = e[i]!;
        m++;
      }
    }
    return m;
  }

  /** Starting LBA of fetched range `i`. */
  private rangeStart(i: number): number {
    const at = i * DSM_RANGE.size + DSM_RANGE.SLBA.offset;
    return this.dsmView.getUint32(at, true) + this.dsmView.getUint32(at + 4, true) * TWO32;
  }

  /** Length in blocks of fetched range `i`. */
  private rangeBlocks(i: number): number {
    return this.dsmView.getUint32(i * DSM_RANGE.size + DSM_RANGE.NLB.offset, true);
  }

  /** The status of a failed PRP walk (§4.3, §4.6.1.2.1). */
  private prpError(r: number): number {
    if (r === PrpResult.BAD_OFFSET) return PRP_OFFSET;
    if (r === PrpResult.BAD_LIST) {
      this.stats.badPrpLists++;
      return INVALID_FIELD;
    }
    return this.transferError();
  }

  private transferError(): number {
    this.stats.dataTransferErrors++;
    return TRANSFER;
  }
}
