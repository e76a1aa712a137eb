/**
 * QEMU's own record of blocked DMA: the `vtd_dmar_fault` trace event of its Intel VT-d model, one
 * line per fault, written on the host (`-trace vtd_dmar_fault -D FILE`). The guest kernel
 * rate-limits its DMAR messages (about 3 per 5 s); this trace does not, so tests that count faults
 * read it. QEMU 7.2's log backend writes, per event:
 *   PID@SECONDS.MICROS:vtd_dmar_fault sid 0x8 fault 5 addr 0x20000000 write 1
 * (the `PID@time:` prefix may be absent, e.g. with other trace back-ends or -msg options).
 */

/** The QEMU trace event (hw/i386/trace-events) the lab switches on with -trace. */
export const DMAR_TRACE_EVENT = 'vtd_dmar_fault';

export interface DmarFault {
  /** PCI requester id (source id): bus << 8 | device << 3 | function. */
  readonly sid: number;
  /** The requester as a PCI address, `0000:00:01.0`. */
  readonly bdf: string;
  /** Fault reason code (VT-d spec, §7.1.3 "Fault reasons"; QEMU's VTDFaultReason). */
  readonly reason: number;
  /** What the reason code means, in words. */
  readonly reasonText: string;
  /** The IOVA the device tried to reach. */
  readonly addr: bigint;
  /** True for a blocked write (the device writing to memory), false for a blocked read. */
  readonly write: boolean;
  /** Host time of the event in seconds, when the trace line carries it. */
  readonly time?: number;
  /** The trace line as written. */
  readonly line: string;
}

/**
 * Non-recoverable fault reasons for DMA remapping (Intel VT-d architecture spec, §7.1.3, the
 * table of fault conditions; numbered as in QEMU's hw/i386/intel_iommu_internal.h).
 */
export const DMAR_FAULT_REASONS: Readonly<Record<number, string>> = {
  0x1: 'root entry not present',
  0x2: 'context entry not present',
  0x3: 'context entry programmed wrongly',
  0x4: 'address beyond the guest address width (MGAW)',
  0x5: 'write not permitted (page-table entry without write access)',
  0x6: 'read not permitted (page-table entry without read access)',
  0x7: 'page-table entry could not be accessed',
  0x8: 'root table could not be accessed',
  0x9: 'context table could not be accessed',
  0xa: 'reserved bits set in a root entry',
  0xb: 'reserved bits set in a context entry',
  0xc: 'reserved bits set in a page-table entry',
  0xd: 'translation type in the context entry not allowed',
  0xe: 'output address in the interrupt address range',
};

/** `sid` -> `0000:BB:DD.F` */
export function sidToBdf(sid: number): string {
  const bus = (sid >> 8) & 0xff,
    dev = (sid >> 3) & 0x1f,
    fn = sid & 7;
  return `0000:${bus.toString(16).padStart(2, '0')}:${dev.toString(16).padStart(2, '0')}.${fn}`;
}

const LINE = /^(?:\d+@(\d+\.\d+):)?vtd_dmar_fault sid 0x([0-9a-f]+) fault (\d+) addr 0x([0-9a-f]+) write (\d+)\s*$/i;

/** Parse one trace line; undefined for any other line (other events, QEMU's own messages). */
export function parseDmarLine(line: string): DmarFault | undefined {
  const m = LINE.exec(line.trim());
  if (!m) return undefined;
  const sid = parseInt(m[2]!, 16);
  const reason = Number(m[3]);
  const fault: DmarFault = {
    sid,
    bdf: sidToBdf(sid),
    reason,
    reasonText: DMAR_FAULT_REASONS[reason] ?? `unknown fault reason ${reason}`,
    addr: BigInt(`0x${m[4]!}`),
    write: m[5] !== '0',
    line: line.trim(),
    ...(m[1] !== undefined ? { time: Number(m[1]) } : {}),
  };
  return fault;
}

/** Every fault in a trace file's text, in order. */
export function parseDmarTrace(text: string): DmarFault[] {
  const out: DmarFault[] = [];
  for (const line of text.split('\n')) {
    const f = parseDmarLine(line);
    if (f) out.push(f);
  }
  return out;
}

/** A run of faults from one device, of one kind, at rising addresses close together (one blocked transfer, usually). */
export interface DmarFaultRun {
  readonly bdf: string;
  readonly write: boolean;
  readonly reason: number;
  readonly reasonText: string;
  /** Lowest and highest faulting address. */
  readonly first: bigint;
  readonly last: bigint;
  readonly count: number;
}

/**
 * Group faults for people to read: QEMU's devices split one transfer into small accesses (its NVMe
 * fetches a 64-byte command as 16 reads of 4 bytes), each its own fault line. Consecutive faults of
 * the same device, direction and reason, each at most `gap` bytes above the previous, form one run.
 */
export function groupDmarFaults(faults: readonly DmarFault[], gap = 4096n): DmarFaultRun[] {
  const runs: DmarFaultRun[] = [];
  let cur: { bdf: string; write: boolean; reason: number; reasonText: string; first: bigint; last: bigint; count: number } | undefined;
  for (const f of faults) {
    if (cur && cur.bdf === f.bdf && cur.write === f.write && cur.reason === f.reason && f.addr > cur.last && f.addr - cur.last <= gap) {
      cur.last = f.addr;
      cur.count++;
      continue;
    }
    cur = { bdf: f.bdf, write: f.write, reason: f.reason, reasonText: f.reasonText, first: f.addr, last: f.addr, count: 1 };
    runs.push(cur);
  }
  return runs;
}
