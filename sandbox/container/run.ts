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
import { closeSync, openSync } from 'node:fs';
import { Socket } from 'node:net';
import { defaultSys, Device, MAP_SHARED, PROT_READ, PROT_WRITE } from 'vfio-bindings';
import type { Platform } from '../../drivers/platform.js';
import type { Namespace, NvmeController } from '../../drivers/nvme/index.js';
import { VfioContainerPlatform } from './vfio-platform.js';
import { FaultKind, GuestEndpoint, LogLevel, type HelloResult } from '../hypercall/index.js';
import { confine } from '../seccomp/confine.js';
import { mapShared } from '../shm.js';
import { GuestMailbox } from '../sim-bar/guest.js';
import { BlockServer } from '../block/server.js';
import { parseBoot } from './boot.js';
import { GrantAllocator, type Grant } from './dma.js';
import { ContainerPlatform } from './platform.js';
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
const sock = new Socket({ fd: boot.fds.hypercall, readable: true, writable: true });
let server: BlockServer | undefined;
let closeDriver: (() => Promise<void>) | undefined;

const guest = new GuestEndpoint(sock, {
  name: boot.driver.name,
  timeoutMs: 10_000,
  handler: {
    shutdown: async () => {
      await server?.quiesce();
      await closeDriver?.();
      setImmediate(() => process.exit(0));
    },
    quiesce: async () => {
      await server?.quiesce();
      return server?.inflight ?? 0;
    },
  },
  onViolation: (e) => {
    if (e.decision === 'kill') {
      process.stderr.write(`container ${boot.name}: hypercall channel lost (${e.code}): exiting\n`);
      process.exit(3);
    }
  },
});

function log(level: LogLevel, text: string): void {
  try { guest.log(level, text); } catch { process.stderr.write(`${text}\n`); }
}

async function start(): Promise<void> {
  const session: HelloResult = await guest.hello();
  // (2) the windows, each from its inherited memfd.
  const grants: Grant[] = [];
  for (let id = 0; id < session.windowCount; id++) {
    const m = await guest.mapWindow(id);
    const length = Number(m.length);
    const addr = sys.mmap(0n, length, PROT_READ | PROT_WRITE, MAP_SHARED, m.fdSlot, m.offset);
    grants.push({ id, iova: m.iova, size: length, perm: { read: m.deviceRead, write: m.deviceWrite }, bytes: new Uint8Array(sys.view(addr, length)) });
  }
  let irqFds: number[] = [];
  if (boot.driver.interrupts === 'msix' && boot.irq.msix > 0) {
    const g = await guest.irqSetup('msix', Math.min(boot.irq.msix, boot.driver.queues + 1));
    irqFds = Array.from({ length: g.granted }, (_, i) => g.firstFdSlot + i);
  }
  // (3) the register mailbox and the block ring.
  const ring = mapShared(sys, boot.fds.block, boot.blockBytes);
  const bd = boot.blockData;
  if (!grants[bd.readGrant]?.perm.write || grants[bd.readGrant]!.perm.read || !grants[bd.writeGrant]?.perm.read || grants[bd.writeGrant]!.perm.write) {
    throw new Error('the block data areas are not in a device-write-only and a device-read-only window');
  }
  // The data areas are the ring's, not the driver's: keep them out of its allocations.
  const dma = new GrantAllocator(grants, [{ grant: bd.readGrant, bytes: bd.bytes }, { grant: bd.writeGrant, bytes: bd.bytes }]);
  let platform: Platform;
  if (boot.device === 'vfio') {
    // Real VFIO: the inherited device fd, nothing else (no container, no group).
    platform = new VfioContainerPlatform(`sandbox:${boot.name}`, Device.fromFd(boot.fds.device, { sys, name: boot.name }), dma, sys, irqFds);
  } else {
    const mailbox = new GuestMailbox(sys, mapShared(sys, boot.fds.mailbox, boot.mailboxBytes), boot.fds.mailboxKick, { timeoutMs: boot.registerTimeoutMs });
    platform = new ContainerPlatform({ name: `sandbox:${boot.name}`, sys, mailbox, bars: boot.bars, irqCounts: boot.irq, irqFds, dma });
  }
  if (boot.device === 'vfio') platform.config.read16(0); // region info fetched now: an ioctl, fine after confine, but keep set-up first
  // (4) everything the driver will need, loaded now: nothing can be opened after (5).
  if (boot.driver.name !== 'nvme') throw new Error(`driver '${boot.driver.name}' has no block service in a container yet`);
  const { NvmeController } = await import('../../drivers/nvme/index.js');
  // (5) confinement.
  if (boot.seccomp !== 'none') {
    confine(boot.seccomp, sys);
    // Check it: opening the VFIO container device must now be refused by the filter (EPERM),
    // not merely fail for lack of the file. A container that could open it refuses to run.
    try {
      closeSync(openSync('/dev/vfio/vfio', 'r'));
      throw new Error('confinement check failed: /dev/vfio/vfio could be opened after confine()');
    } catch (e) {
      const code = (e as { code?: string }).code;
      if (code !== 'EPERM' && code !== 'EACCES') throw e;
      log(LogLevel.INFO, `confined (seccomp '${boot.seccomp}', no_new_privs): open of /dev/vfio/vfio refused with ${code}`);
    }
  }
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

start().catch((e: unknown) => {
  const err = e as Error & { code?: string };
  log(LogLevel.ERROR, `start failed: ${err.code ?? ''} ${err.message}`);
  process.stderr.write(`container ${boot.name}: ${err.stack ?? err.message}\n`);
  setTimeout(() => process.exit(2), 50);
});
}
