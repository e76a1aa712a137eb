/**
 * PCI configuration space: the type 0 header (PCI Local Bus Specification 3.0, §6.1, §6.2) and
 * the capability IDs this project meets (PCI Code and ID Assignment Specification 1.11, §2).
 * Declared once here for the drivers, the device models, the manager's quarantine and the VFIO
 * platform (spec/field.ts explains the style).
 */
import { bit, bits, reg16, reg32, reg8 } from '../field.js';
import { PCIE } from './capabilities.js';

/** Bytes of a PCI Express function's configuration space (the first 256 are PCI-compatible). */
export const CONFIG_SPACE_BYTES = 4096;

/** The type 0 header (§6.1, Figure 6-1). */
export const PCI = Object.freeze({
  VENDOR_ID: reg16(0x00, 'PCI 3.0 §6.2.1'),
  DEVICE_ID: reg16(0x02, 'PCI 3.0 §6.2.1'),
  /** Command (§6.2.2, Table 6-1). */
  COMMAND: reg16(0x04, 'PCI 3.0 §6.2.2', {
    /** I/O Space: respond to I/O space accesses. */
    IO_SPACE: bit(0),
    /** Memory Space: respond to memory space accesses (the BARs). */
    MEMORY_SPACE: bit(1),
    /** Bus Master: the function may issue memory requests (DMA, and MSI/MSI-X messages). */
    BUS_MASTER: bit(2),
    /** Interrupt Disable: the function may not assert INTx. */
    INTX_DISABLE: bit(10),
  }),
  /** Status (§6.2.3, Table 6-2). */
  STATUS: reg16(0x06, 'PCI 3.0 §6.2.3', {
    /** Interrupt Status: an INTx is pending (whatever Interrupt Disable says). */
    INTX: bit(3),
    /** Capabilities List: Capabilities Pointer is valid. */
    CAP_LIST: bit(4),
  }),
  REVISION_ID: reg8(0x08, 'PCI 3.0 §6.2.1'),
  /** Class Code: 3 bytes at 0x09 (programming interface, sub-class, base class). */
  CLASS_CODE: reg8(0x09, 'PCI 3.0 §6.2.1'),
  HEADER_TYPE: reg8(0x0e, 'PCI 3.0 §6.2.1'),
  /** Base Address Register 0; BAR n at 0x10 + 4n (§6.2.5.1). */
  BAR0: reg32(0x10, 'PCI 3.0 §6.2.5.1', {
    /** 0: memory BAR, 1: I/O BAR. */
    IO: bit(0),
    /** Memory BAR type: 00b 32-bit, 10b 64-bit. */
    TYPE: bits(2, 1),
    PREFETCHABLE: bit(3),
  }),
  SUBSYSTEM_VENDOR_ID: reg16(0x2c, 'PCI 3.0 §6.2.4'),
  SUBSYSTEM_ID: reg16(0x2e, 'PCI 3.0 §6.2.4'),
  /** Capabilities Pointer: the first capability's offset (§6.7). */
  CAPABILITIES_POINTER: reg8(0x34, 'PCI 3.0 §6.7'),
  INTERRUPT_LINE: reg8(0x3c, 'PCI 3.0 §6.2.4'),
  /** Interrupt Pin: 0 none, 1..4 INTA#..INTD#. */
  INTERRUPT_PIN: reg8(0x3d, 'PCI 3.0 §6.2.4'),
});

/** Offset of BAR `n` (0..5) in the type 0 header. */
export function barOffset(n: number): number {
  return PCI.BAR0.offset + 4 * n;
}

/** Capability IDs (PCI Code and ID Assignment 1.11, §2). Every capability starts with ID, Next. */
export const CAP_ID = Object.freeze({
  /** PCI Power Management Interface. */
  PM: 0x01,
  /** Message Signaled Interrupts (PCI 3.0 §6.8.1). */
  MSI: 0x05,
  /** PCI Express (PCIe Base 4.0 §7.5.3). */
  PCIE: 0x10,
  /** MSI-X (PCI 3.0 §6.8.2). */
  MSIX: 0x11,
});

/** Every capability: ID at +0, Next Capability Pointer at +1 (§6.7). */
export const CAP = Object.freeze({
  ID: reg8(0x00, 'PCI 3.0 §6.7'),
  NEXT: reg8(0x01, 'PCI 3.0 §6.7'),
});

/** What `busMaster` needs: any configuration space accessor (the VFIO region, the simulator's, the mailbox's). */
export interface CommandAccess {
  read16(offset: number): number;
  write16(offset: number, value: number): void;
}

/**
 * Turn Bus Master Enable on or off. Off is the first step of quarantine: with it clear the
 * function may issue no memory request at all (no DMA, no MSI), whatever its driver left behind.
 */
export function setBusMaster(config: CommandAccess, on: boolean): void {
  const at = PCI.COMMAND.offset;
  const v = config.read16(at);
  config.write16(at, on ? v | PCI.COMMAND.BUS_MASTER.mask : v & ~PCI.COMMAND.BUS_MASTER.mask);
}

/** Configuration space with byte reads too (the capability list is walked a byte at a time). */
export interface ConfigAccess extends CommandAccess {
  read8(offset: number): number;
}

/**
 * Offset of the first capability with this ID in the list (§6.7), or 0. Bounded: at most 48
 * entries (the 192 bytes after the header hold no more), so a looping list ends.
 */
export function findCapability(config: ConfigAccess, id: number): number {
  if ((config.read16(PCI.STATUS.offset) & PCI.STATUS.CAP_LIST.mask) === 0) return 0;
  let at = config.read8(PCI.CAPABILITIES_POINTER.offset) & 0xfc;
  for (let i = 0; i < 48 && at >= 0x40; i++) {
    if (config.read8(at + CAP.ID.offset) === id) return at;
    at = config.read8(at + CAP.NEXT.offset) & 0xfc;
  }
  return 0;
}

/**
 * Turn on the PCI Express function's error reporting (Device Control CERE, NFERE, FERE, URRE; PCIe
 * 4.0 §7.5.3.4), so its errors reach the root port's AER and the kernel's recovery. Returns whether
 * the bits stuck (a device may give them no write mask, as QEMU's e1000e does); false as well for a
 * function without the PCI Express capability.
 */
export function enableErrorReporting(config: ConfigAccess): boolean {
  const cap = findCapability(config, CAP_ID.PCIE);
  if (cap === 0) return false;
  const at = cap + PCIE.DEVCTL.offset;
  const want = PCIE.DEVCTL.CERE.mask | PCIE.DEVCTL.NFERE.mask | PCIE.DEVCTL.FERE.mask | PCIE.DEVCTL.URRE.mask;
  // Never write Initiate FLR back (it reads 0 anyway).
  config.write16(at, (config.read16(at) | want) & ~PCIE.DEVCTL.INITIATE_FLR.mask);
  return (config.read16(at) & want) === want;
}
