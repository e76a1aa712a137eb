/**
 * The driver container: one driver in its own unprivileged process (entrypoint: main.ts).
 *
 * Order matters: (1) the hypercall channel on fd 3, HELLO; (2) MAP_WINDOW for every granted window,
 * each mmapped from its inherited memfd; IRQ_SETUP for the interrupt eventfds; (3) the register
 * mailbox and the block ring; (4) every module the driver needs is loaded; (5) confine('driver'):
 * no_new_privs and the seccomp filter, from here on no open, no exec, no new fds of new kinds;
 * (6) the driver starts on the Platform built from what was handed over; (7) READY and heartbeats
 * carrying the block server's progress counters. SHUTDOWN quiesces, closes the driver and exits.
 */
import { defaultSys } from 'linux-sys';
import type { Namespace, NvmeController } from '../../drivers/nvme/index.js';
import { FaultKind, LogLevel } from '../abi/hypercall/index.js';
import { type GuestEndpoint } from './hypercall/guest.js';
import { mapShared } from '../abi/shm.js';
import { BlockServer } from './services/block.js';
import { parseBoot } from '../abi/boot.js';
import { confineChecked, devicePlatform, grantAllocator, mapGrants, msixFds, openEndpoint, startFailed } from './bootstrap.js';
import { NvmeDirect } from './nvme-direct.js';
import { runNicContainer } from './nic-run.js';

/** What a started container has, for test fixtures that misbehave on purpose after READY. */
export interface RunningContainer {
  ctrl: NvmeController;
  ns: Namespace;
  guest: GuestEndpoint;
  log(level: LogLevel, text: string): void;
}

export function runContainer(afterReady?: (c: RunningContainer) => void): void {
const boot = parseBoot(process.argv[2]);
// A NIC driver serves the packet rings instead of the block ring (nic-run.ts).
if (boot.driver.name === 'e1000e') return runNicContainer(boot);
const sys = defaultSys();
let server: BlockServer | undefined;
let closeDriver: (() => Promise<void>) | undefined;
const { guest, log } = openEndpoint(boot, () => ({
  quiesce: async () => {
    await server?.quiesce();
    return server?.inflight ?? 0;
  },
  shutdown: async () => {
    await server?.quiesce();
    await closeDriver?.();
  },
}));

async function start(): Promise<void> {
  // (2) the windows, each from its inherited memfd; the MSI-X eventfds (one per queue and the admin queue).
  const grants = await mapGrants(guest, sys);
  const irqFds = await msixFds(guest, boot, boot.driver.queues + 1);
  // (3) the register mailbox or the device fd, and the block ring.
  const ring = mapShared(sys, boot.fds.block, boot.blockBytes);
  const bd = boot.blockData;
  if (!grants[bd.readGrant]?.perm.write || grants[bd.readGrant]!.perm.read || !grants[bd.writeGrant]?.perm.read || grants[bd.writeGrant]!.perm.write) {
    throw new Error('the block data areas are not in a device-write-only and a device-read-only window');
  }
  const dma = grantAllocator(boot, grants);
  const platform = devicePlatform(boot, sys, dma, irqFds);
  // (4) everything the driver will need, loaded now: nothing can be opened after (5).
  if (boot.driver.name !== 'nvme') throw new Error(`driver '${boot.driver.name}' has no block service in a container yet`);
  const { NvmeController } = await import('../../drivers/nvme/index.js');
  // (5) confinement, checked.
  confineChecked(boot, sys, log);
  // (6) the driver. Block data moves through the ring's areas (NvmeDirect), so the driver's own
  // per-slot buffers (used only by its Promise API) are one page each.
  const bufferBytes = 4096;
  const ctrl = await NvmeController.open(platform, {
    queues: boot.driver.queues,
    queueEntries: boot.driver.depth,
    bufferBytes,
    interrupts: boot.driver.interrupts === 'msix' ? 'msix' : 'poll',
    log: (m) => log(LogLevel.WARN, m),
  });
  closeDriver = async () => {
    try { await ctrl.close(); } catch { /* the manager quarantines the device anyway */ }
    platform.close();
  };
  const ns = ctrl.namespaces[0];
  if (!ns) throw new Error('the controller has no active namespace');
  // A polling driver turns the event loop while I/O is in flight anyway: the ring is polled on the
  // same turns and the manager's request kicks are left out (block/layout.ts, "Polling").
  server = new BlockServer(sys, ring, boot.fds.blockRequest, boot.fds.blockCompletion, { pollWhileBusy: boot.driver.interrupts !== 'msix' });
  const direct = new NvmeDirect(ctrl, ns, { read: grants[bd.readGrant]!.iova, write: grants[bd.writeGrant]!.iova }, server.geometry, dma);
  // A data transfer error (NVMe 1.4 §4.6.1.2.1, generic status 0x04: what a device reports when
  // the IOMMU refused its DMA) or a timeout goes to the manager as FAULT, next to its IOMMU log.
  server.onError = (e) => {
    const err = e as { code?: string; sct?: number; sc?: number };
    if (err.code === 'ERR_NVME_STATUS' && err.sct === 0 && err.sc === 0x04) guest.fault({ kind: FaultKind.DMA, code: 0x04, iova: 0n });
    else if (err.code === 'ERR_NVME_TIMEOUT') guest.fault({ kind: FaultKind.TIMEOUT, code: 0, iova: 0n });
  };
  server.start(direct);
  const s = server;
  // (7) serving.
  log(LogLevel.INFO, `${ctrl.describe()}: ${ns.blockCount} blocks of ${ns.blockSize} bytes, ${boot.driver.queues} queue(s), ${direct.chunkBytes / 1024} KiB per command, data DMA'd in place${boot.seccomp === 'none' ? ', UNCONFINED' : ''}`);
  guest.ready(boot.driver.queues);
  guest.startHeartbeats(() => ({ completed: s.completed, errors: s.errors, bytes: s.bytesMoved, inflight: s.inflight }));
  afterReady?.({ ctrl, ns, guest, log });
}

start().catch(startFailed(boot, log));
}
