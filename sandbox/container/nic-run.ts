/**
 * A NIC driver container (driver: e1000e): what run.ts does for NVMe, with the packet rings
 * (sandbox/net) in place of the block ring. run.ts dispatches here for `driver.name === 'e1000e'`.
 *
 * Order: (1) HELLO on fd 3; (2) MAP_WINDOW for every grant, IRQ_SETUP for MSI-X; (3) the register
 * mailbox (simulator) or the device fd (VFIO), and the packet ring memfd with its kick and notify
 * eventfds (boot.attachments.net); (4) the driver module loaded; (5) confine('driver') and its
 * check; (6) E1000e.open on the container's Platform, then the ring server; (7) READY, heartbeats
 * carrying the frames moved. SHUTDOWN stops the server, closes the driver and exits.
 */
import { defaultSys } from 'linux-sys';
import type { E1000e } from '../../drivers/e1000e/device.js';
import { LogLevel } from '../abi/hypercall/index.js';
import { type GuestEndpoint } from './hypercall/guest.js';
import { mapShared } from '../abi/shm.js';
import { NicServer } from './services/net.js';
import type { ContainerBoot } from '../abi/boot.js';
import { confineChecked, devicePlatform, grantAllocator, mapGrants, msixFds, openEndpoint, startFailed } from './bootstrap.js';

/** The attachments the manager announced (incarnation.ts). */
type BootWithAttachments = ContainerBoot & { attachments?: Record<string, { fdSlot: number; fds: number; bytes: number }> };

/** What a started NIC container has, for test fixtures that misbehave on purpose after READY. */
export interface RunningNicContainer {
  nic: E1000e;
  server: NicServer;
  /** The packet ring as mapped here (a hostile fixture writes into it). */
  ring: { u32: Uint32Array; bytes: Uint8Array };
  notifyFd: number;
  guest: GuestEndpoint;
  log(level: LogLevel, text: string): void;
}

export function runNicContainer(boot: BootWithAttachments, afterReady?: (c: RunningNicContainer) => void): void {
  const sys = defaultSys();
  let server: NicServer | undefined;
  let closeDriver: (() => Promise<void>) | undefined;
  const { guest, log } = openEndpoint(boot, () => ({
    quiesce: async () => {
      await server?.stop();
      return 0;
    },
    shutdown: async () => {
      await server?.stop();
      await closeDriver?.();
    },
  }));

  async function start(): Promise<void> {
    // (2) the windows, each from its inherited memfd; the MSI-X eventfd (one vector).
    const grants = await mapGrants(guest, sys);
    const irqFds = await msixFds(guest, boot, 1);
    // (3) registers, and the packet rings. The manager reserved the (unused) block ring areas;
    // they stay out of the driver's allocations all the same.
    const dma = grantAllocator(boot, grants);
    const platform = devicePlatform(boot, sys, dma, irqFds);
    const net = boot.attachments?.net;
    if (!net || net.fds !== 3 || !Number.isInteger(net.fdSlot) || !Number.isInteger(net.bytes)) {
      throw new Error('no packet ring was handed to this container (boot.attachments.net): the manager must make the NIC port before spawning');
    }
    const ring = mapShared(sys, net.fdSlot, net.bytes);
    const kickFd = net.fdSlot + 1, notifyFd = net.fdSlot + 2;
    // (4) the driver module, loaded before confinement.
    const { E1000e } = await import('../../drivers/e1000e/device.js');
    // (5) confinement, checked.
    confineChecked(boot, sys, log);
    // (6) the driver: rings of the policy's depth, twice as many buffers; open with the link down
    // rather than fail (an unplugged simulated cable must not make the container crash-loop).
    // Pools of twice the ring, or what the policy's windows hold (at least a ring's worth for RX).
    const depth = boot.driver.depth;
    const ringBytes = Math.ceil((depth * 16) / 4096) * 4096;
    const fit = (perm: { read: boolean; write: boolean }, less: number): number => Math.floor(Math.max(0, dma.available(perm) - less) / 2048);
    const rxBuffers = Math.min(2 * depth, fit({ read: false, write: true }, 0));
    const txBuffers = Math.min(2 * depth, fit({ read: true, write: false }, ringBytes));
    if (dma.available({ read: true, write: true }) < ringBytes || rxBuffers < depth + 1 || txBuffers < 1) {
      throw new Error(`the policy's windows cannot hold the e1000e's rings of ${depth} descriptors: it needs ${ringBytes} bytes device read-write (RX descriptors, status written back), ${ringBytes} + at least 2 KiB device read-only (TX descriptors and buffers) and ${(depth + 1) * 2} KiB device write-only (RX buffers); free now: ${dma.available({ read: true, write: true })}, ${dma.available({ read: true, write: false })}, ${dma.available({ read: false, write: true })}. Fix: add a window { size: 64KiB, access: read-write } and a 'split' window of at least ${Math.ceil(((depth + 1) * 4096 + ringBytes) / 2 ** 20)} MiB, or lower driver.depth`);
    }
    const nic = await E1000e.open(platform, {
      rxDescriptors: depth,
      txDescriptors: depth,
      rxBuffers,
      txBuffers,
      interrupts: boot.driver.interrupts === 'msix' ? 'msix' : 'poll',
      requireLink: false,
      linkTimeoutMs: 1000,
    });
    closeDriver = async () => {
      try { await nic.close(); } catch { /* the manager quarantines the device anyway */ }
      platform.close();
    };
    const s = (server = new NicServer(sys, ring, kickFd, notifyFd, nic));
    s.start();
    // (7) serving.
    const link = nic.link();
    log(LogLevel.INFO, `e1000e ${[...nic.mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}: link ${link.up ? `up ${link.speedMbps} Mb/s` : 'down'}, ${depth} descriptors per ring, ${boot.driver.interrupts}, packet rings ${s.layout.txSlots}+${s.layout.rxSlots} slots, one copy per frame in the container${boot.seccomp === 'none' ? ', UNCONFINED' : ''}`);
    guest.ready(1);
    guest.startHeartbeats(() => ({ completed: BigInt(s.frames), errors: BigInt(s.counters.badEntries), bytes: BigInt(s.counters.bytes), inflight: 0 }));
    afterReady?.({ nic, server: s, ring: { u32: ring.u32, bytes: ring.bytes }, notifyFd, guest, log });
  }

  start().catch(startFailed(boot, log));
}
