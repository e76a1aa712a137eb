/**
 * The coverage-guided fuzzer's hook in the NVMe model (campaigns/fuzz/): a `mutator` given in the
 * options sees what the controller is about to hand the driver and may change it. Three sites:
 * every BAR0 dword read (CAP, VS, CSTS, ... §3.1), every completion entry as it is built (§4.6),
 * and Identify data before its DMA (§5.15). Without a mutator each site is one `undefined` compare
 * and the model behaves exactly as before.
 */
import type { BarHandler } from '../regs.js';

export interface NvmeMutator {
  /** A BAR0 dword read at byte `offset` answered `value`: the value the driver sees (a u32). */
  register(offset: number, value: number): number;
  /** A completion entry was built: its four dwords at `entries[at..at + 3]`, changed in place. */
  completion(entries: Uint32Array, at: number): void;
  /** Identify data (CNS `cns`) is about to be written to the host: changed in place. */
  identify(cns: number, data: Uint8Array): void;
}

/** BAR0 with its reads passed through `mutator` (the handler itself when there is none). */
export function mutableBar(handler: BarHandler, mutator: NvmeMutator | undefined): BarHandler {
  if (mutator === undefined) return handler;
  return {
    read32: (off: number) => mutator.register(off, handler.read32(off)) >>> 0,
    write32: (off: number, v: number) => handler.write32(off, v),
  };
}
