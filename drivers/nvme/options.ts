/** The driver's options (NvmeController.open) and their defaults. */

export interface NvmeOptions {
  /** I/O queue pairs wanted (granted: min of this, the controller's grant, and MSI-X vectors - 1). Default 1. */
  queues?: number;
  /** Entries per I/O queue (capped by CAP.MQES + 1). Default 64. */
  queueEntries?: number;
  /** Entries in the admin queues (2..4096). Default 32. */
  adminEntries?: number;
  /** Data buffer per slot and direction, bytes; transfers larger than this (or than MDTS) are split. Default 64 KiB. */
  bufferBytes?: number;
  /** 'poll' (default): the driver polls the CQs; 'msix': one vector per CQ, the admin CQ on vector 0. */
  interrupts?: 'poll' | 'msix';
  /** Time after which an admin command is escalated. Default 2000 ms. */
  adminTimeoutMs?: number;
  /** Time after which an I/O command is escalated. Default 5000 ms. */
  ioTimeoutMs?: number;
  /** Bound on CC.SHN normal shutdown (CSTS.SHST = complete). Default 5000 ms (RTD3E is not read). */
  shutdownTimeoutMs?: number;
  /** Where protocol errors (unknown CIDs, late completions) and escalations are reported. Default: console.warn. */
  log?: (message: string) => void;
}

export type ResolvedOptions = Required<NvmeOptions>;

/** The options with every default filled in; `name` prefixes the default log's lines. */
export function resolveOptions(name: string, o: NvmeOptions): ResolvedOptions {
  return {
    queues: o.queues ?? 1,
    queueEntries: o.queueEntries ?? 64,
    adminEntries: o.adminEntries ?? 32,
    bufferBytes: o.bufferBytes ?? 64 * 1024,
    interrupts: o.interrupts ?? 'poll',
    adminTimeoutMs: o.adminTimeoutMs ?? 2000,
    ioTimeoutMs: o.ioTimeoutMs ?? 5000,
    shutdownTimeoutMs: o.shutdownTimeoutMs ?? 5000,
    log: o.log ?? ((m) => console.warn(`nvme ${name}: ${m}`)),
  };
}
