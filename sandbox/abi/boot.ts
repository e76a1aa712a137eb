/**
 * What the manager tells a container at spawn (one JSON argument): which inherited fd is what, the
 * device's shape, the driver's options. Window memory and interrupt eventfds are announced through
 * the hypercall interface (MAP_WINDOW, IRQ_SETUP); this is only what the container needs to start
 * talking. The manager writes it, so it is checked for shape, not distrusted.
 */
export interface ContainerBoot {
  /** Sandbox name (the policy's). */
  name: string;
  /** Driver name for HELLO and the module to load. */
  driver: { name: 'nvme' | 'e1000e'; queues: number; depth: number; interrupts: 'polling' | 'msix' };
  /** 'sim': registers through the mailbox (fds 4, 5); 'vfio': the device fd (fd 4). */
  device: 'sim' | 'vfio';
  fds: { hypercall: number; mailbox: number; mailboxKick: number; device: number; block: number; blockRequest: number; blockCompletion: number };
  mailboxBytes: number;
  blockBytes: number;
  /** The block ring's data areas: at offset 0 of these window ids, `bytes` each (block/layout.ts). */
  blockData: { readGrant: number; writeGrant: number; bytes: number };
  /** BAR sizes 0..5 (0: none). */
  bars: number[];
  irq: { msix: number; intx: number };
  /** 'driver' (seccomp profile) or 'none' (policy `unconfined: true`). */
  seccomp: string;
  /** Bound on each register read through the mailbox. */
  registerTimeoutMs: number;
}

/** Slot 4 is the register mailbox (sim) or the VFIO device fd; slot 5 the mailbox's kick eventfd (sim). */
export const BOOT_FDS = { hypercall: 3, mailbox: 4, mailboxKick: 5, device: 4, block: 6, blockRequest: 7, blockCompletion: 8 } as const;
/** The first fd after the fixed ones: window memfds, then interrupt eventfds. */
export const FIRST_DYNAMIC_FD = 9;

export function parseBoot(text: string | undefined): ContainerBoot {
  if (text === undefined) throw new Error('dmabox container: no boot descriptor (argv[2]); this program is started by the dmabox manager, not by hand');
  const b = JSON.parse(text) as ContainerBoot;
  const ok = (b.device === 'sim' || b.device === 'vfio') && typeof b.name === 'string' && typeof b.driver?.name === 'string' && Number.isInteger(b.driver.queues) && Number.isInteger(b.driver.depth)
    && Number.isInteger(b.blockData?.readGrant) && Number.isInteger(b.blockData?.writeGrant) && Number.isInteger(b.blockData?.bytes) && Array.isArray(b.bars) && b.bars.length === 6 && Number.isInteger(b.mailboxBytes) && Number.isInteger(b.blockBytes) && typeof b.seccomp === 'string';
  if (!ok) throw new Error('dmabox container: malformed boot descriptor');
  return b;
}
