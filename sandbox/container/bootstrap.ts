/**
 * What every driver container does before and around its driver, whatever the driver (run.ts for
 * NVMe and the block ring, nic-run.ts for e1000e and the packet rings): the hypercall endpoint on
 * fd 3 with SHUTDOWN and QUIESCE wired to the service, HELLO, every granted window mapped from its
 * inherited memfd, the MSI-X eventfds, the device's Platform (the register mailbox for a simulated
 * device, the inherited device fd on VFIO), confinement and its check, and the start-failure
 * report. The order of the steps is the callers' (run.ts lists it).
 */
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { Device } from 'vfio-bindings';
import { MAP_SHARED, PROT_READ, PROT_WRITE, type Sys } from 'linux-sys';
import type { Platform } from '../../drivers/contract/platform.js';
import { LogLevel } from '../abi/hypercall/index.js';
import { GuestEndpoint } from './hypercall/guest.js';
import { confine } from '../seccomp/confine.js';
import { mapShared } from '../abi/shm.js';
import { GuestMailbox } from './mailbox.js';
import type { ContainerBoot } from '../abi/boot.js';
import { GrantAllocator, type Grant } from './dma.js';
import { ContainerPlatform } from './platform.js';
import { VfioContainerPlatform } from './vfio-platform.js';

/** What the manager may ask of the service the container runs. */
export interface ContainerService {
  /** Take no more requests; resolve with how many are still in flight (0 when drained). */
  quiesce(): Promise<number>;
  /** Quiesce, then close the driver (the process exits after). */
  shutdown(): Promise<void>;
}

export interface Bootstrap {
  guest: GuestEndpoint;
  /** To the manager's log (the hypercall LOG), or stderr when the channel is gone. */
  log(level: LogLevel, text: string): void;
}

/** The hypercall endpoint on fd 3; a lost channel ends the process (the manager restarts it). */
export function openEndpoint(boot: ContainerBoot, service: () => ContainerService | undefined): Bootstrap {
  const sock = new Socket({ fd: boot.fds.hypercall, readable: true, writable: true });
  const guest = new GuestEndpoint(sock, {
    name: boot.driver.name,
    timeoutMs: 10_000,
    handler: {
      shutdown: async () => {
        await service()?.shutdown();
        setImmediate(() => process.exit(0));
      },
      quiesce: async () => (await service()?.quiesce()) ?? 0,
    },
    onViolation: (e) => {
      if (e.decision === 'kill') {
        process.stderr.write(`container ${boot.name}: hypercall channel lost (${e.code}): exiting\n`);
        process.exit(3);
      }
    },
  });
  const log = (level: LogLevel, text: string): void => {
    try { guest.log(level, text); } catch { process.stderr.write(`${text}\n`); }
  };
  return { guest, log };
}

/** HELLO, then every granted window mapped from its inherited memfd. */
export async function mapGrants(guest: GuestEndpoint, sys: Sys): Promise<Grant[]> {
  const session = await guest.hello();
  const grants: Grant[] = [];
  for (let id = 0; id < session.windowCount; id++) {
    const m = await guest.mapWindow(id);
    const length = Number(m.length);
    const addr = sys.mmap(0n, length, PROT_READ | PROT_WRITE, MAP_SHARED, m.fdSlot, m.offset);
    grants.push({ id, iova: m.iova, size: length, perm: { read: m.deviceRead, write: m.deviceWrite }, bytes: new Uint8Array(sys.view(addr, length)) });
  }
  return grants;
}

/** The MSI-X eventfds (up to `vectors`) when the policy asks for interrupts; none when it polls. */
export async function msixFds(guest: GuestEndpoint, boot: ContainerBoot, vectors: number): Promise<number[]> {
  if (boot.driver.interrupts !== 'msix' || boot.irq.msix === 0) return [];
  const g = await guest.irqSetup('msix', Math.min(boot.irq.msix, vectors));
  return Array.from({ length: g.granted }, (_, i) => g.firstFdSlot + i);
}

/**
 * The windows as a DMA allocator, keeping the block ring's data areas (the manager reserved them
 * at the start of two windows) out of the driver's allocations.
 */
export function grantAllocator(boot: ContainerBoot, grants: Grant[]): GrantAllocator {
  const bd = boot.blockData;
  return new GrantAllocator(grants, [{ grant: bd.readGrant, bytes: bd.bytes }, { grant: bd.writeGrant, bytes: bd.bytes }]);
}

/** The device as the driver sees it: the inherited VFIO device fd, or the register mailbox. */
export function devicePlatform(boot: ContainerBoot, sys: Sys, dma: GrantAllocator, irqFds: number[]): Platform {
  if (boot.device === 'vfio') {
    // Real VFIO: the inherited device fd, nothing else (no container, no group).
    const platform = new VfioContainerPlatform(`sandbox:${boot.name}`, Device.fromFd(boot.fds.device, { sys, name: boot.name }), dma, sys, irqFds);
    platform.config.read16(0); // region info fetched now: an ioctl, fine after confine, but keep set-up first
    return platform;
  }
  const mailbox = new GuestMailbox(sys, mapShared(sys, boot.fds.mailbox, boot.mailboxBytes), boot.fds.mailboxKick, { timeoutMs: boot.registerTimeoutMs });
  return new ContainerPlatform({ name: `sandbox:${boot.name}`, sys, mailbox, bars: boot.bars, irqCounts: boot.irq, irqFds, dma });
}

/**
 * no_new_privs and the policy's seccomp filter, then the check: opening the VFIO container device
 * must now be refused by the filter (EPERM), not merely fail for lack of the file. A container
 * that could open it refuses to run. Every module the driver needs must be loaded before.
 */
export function confineChecked(boot: ContainerBoot, sys: Sys, log: Bootstrap['log']): void {
  if (boot.seccomp === 'none') return;
  confine(boot.seccomp, sys);
  try {
    closeSync(openSync('/dev/vfio/vfio', 'r'));
    throw new Error('confinement check failed: /dev/vfio/vfio could be opened after confine()');
  } catch (e) {
    const code = (e as { code?: string }).code;
    if (code !== 'EPERM' && code !== 'EACCES') throw e;
    log(LogLevel.INFO, `confined (seccomp '${boot.seccomp}', no_new_privs): open of /dev/vfio/vfio refused with ${code}`);
  }
}

/** A start that failed: say why to the manager and on stderr, then exit 2 (the supervisor restarts). */
export function startFailed(boot: ContainerBoot, log: Bootstrap['log']): (e: unknown) => void {
  return (e) => {
    const err = e as Error & { code?: string };
    log(LogLevel.ERROR, `start failed: ${err.code ?? ''} ${err.message}`);
    process.stderr.write(`container ${boot.name}: ${err.stack ?? err.message}\n`);
    setTimeout(() => process.exit(2), 50);
  };
}
