/**
 * The contract between a simulated device model (sim/nvme, sim/e1000e) and the simulated machine.
 *
 * A model declares, at construction, what PCI would show (ids, memory BARs with their register
 * handlers, MSI-X geometry, INTx); the machine builds the function's config space from that, then
 * calls `attach(fn)` once, where the model takes what it needs from the function: `fn.dma` (its
 * device-side DMA engine), `fn.interrupt(v)`, `fn.work(routine)` (scheduling). `reset()` is the
 * function-level reset: every register back to its power-on value, queues and rings forgotten.
 * See sim/README.md for an example.
 */
import type { BarHandler } from './regs.js';
import type { PciFunction } from './pci.js';

export interface PciIds {
  /** Vendor ID (config 0x00), e.g. 0x1b36 (Red Hat, QEMU's NVMe) or 0x8086. */
  readonly vendor: number;
  /** Device ID (config 0x02). */
  readonly device: number;
  /** Class code, 24 bits: base class << 16 | sub-class << 8 | programming interface (config 0x09). NVMe: 0x010802. */
  readonly classCode: number;
  /** Revision ID (config 0x08). */
  readonly revision: number;
  readonly subsystemVendor?: number;
  readonly subsystemDevice?: number;
}

export interface BarDecl {
  /** BAR number 0..5. A 64-bit BAR also uses index + 1. */
  readonly index: number;
  /** Size in bytes, a power of two of at least 4096 (so BAR sizing and mapping work per page). */
  readonly size: number;
  /** The registers. Accesses here are already bounds-checked, 4-byte aligned, and outside the MSI-X table/PBA. */
  readonly handler: BarHandler;
  /** 64-bit memory BAR (default true, like NVMe's BAR0/1 and e1000e's BAR0). */
  readonly is64?: boolean;
}

export interface MsixDecl {
  /** Number of vectors (1..2048). */
  readonly vectors: number;
  /** The BAR holding the table and the PBA (they may share a BAR with registers). */
  readonly bar: number;
  /** Byte offset of the table in that BAR (8-byte aligned). */
  readonly tableOffset: number;
  /** Byte offset of the PBA in that BAR (8-byte aligned). */
  readonly pbaOffset: number;
}

export interface DeviceModel {
  /** Short name for logs: `nvme`, `e1000e`. */
  readonly name: string;
  readonly ids: PciIds;
  readonly bars: readonly BarDecl[];
  readonly msix?: MsixDecl;
  /** MSI (PCI 3.0 §6.8.1): how many vectors the function asks for (1, 2, 4, ... 32). */
  readonly msi?: { readonly vectors: number };
  /** The function has an INTx pin (INTA#). */
  readonly intx?: boolean;
  /** Called once, after the function's config space is built. */
  attach(fn: PciFunction): void;
  /** Function-level reset (PCIe Base 4.0 §6.6.2): back to power-on state. */
  reset(): void;
  /**
   * An exception escaped the model and its PciFunction caught it (`PciFunction.deviceFault`):
   * enter the fatal state the driver can see (NVMe CSTS.CFS; a NIC stops its rings) until a reset.
   * Without it the function is hung instead.
   */
  fail?(reason: string): void;
}
