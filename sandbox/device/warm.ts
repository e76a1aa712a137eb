/**
 * A spare device process's warm-up (sandbox/abi/handover.ts), run before it waits for its fds:
 * V8 compiles a function on its first call, and a device process's start (DeviceHost: the
 * SimMachine, the model, the IOMMU domain, the mappings; the seccomp filter) is all first calls.
 * A throwaway DeviceHost of each model kind, over plain memory instead of memfds, and the
 * 'device' filter compiled (not installed) take those compilations off the restart's path. Nothing
 * of it is kept, and it touches no fd. The namespace store's address range is reserved here too.
 */
import type { Sys } from 'linux-sys';
import type { DeviceStart } from '../abi/device.js';
import { collectBeforeWaiting } from '../abi/handover.js';
import { compile, profile } from '../seccomp/profiles.js';
import { DeviceHost } from './device.js';
import { reserveStore } from './store-reservation.js';

/** Just what DeviceHost's constructor calls: mmap gives an address, view memory of its own. */
function plainMemory(): Sys {
  let next = 0x1000n;
  const sys = {
    mmap: (_addr: bigint, length: number): bigint => {
      const a = next;
      next += BigInt(Math.ceil(length / 4096) * 4096);
      return a;
    },
    view: (_addr: bigint, length: number): ArrayBuffer => new ArrayBuffer(length),
  };
  return sys as unknown as Sys;
}

const BASE = {
  name: 'warm-up',
  address: '0000:00:01.0',
  mailbox: { fdSlot: 4, bytes: 4096, kickFdSlot: 5 },
  irqFdSlots: [],
  heartbeatMs: 1000,
  seccomp: 'none',
  pollMs: 0,
};
const WINDOW = { iova: '0x100000', size: 65536, offset: 0, memfdSize: 65536, read: true, write: true, fdSlot: 6, label: 'warm-up' };

/**
 * Warm up; with `storeBytes`, reserve the namespace store's range (store-reservation.ts). Then one
 * full collection, so that neither the warm-up's garbage nor the reservation's view leaves a
 * collection pending for the takeover (the spare then blocks in recvmsg, where V8 does nothing).
 */
export function warmUp(sys?: Sys, storeBytes?: number): void {
  const starts: DeviceStart[] = [
    { ...BASE, model: { kind: 'nvme', serial: 'warm', blocks: 64, blockSize: 512, mqes: 64, maxQueues: 2, storeFdSlot: 7 }, mappings: [WINDOW] },
    { ...BASE, model: { kind: 'e1000e', mac: '52:54:00:00:00:01', peer: 'echo' }, mappings: [WINDOW] },
  ];
  for (const start of starts) {
    const host = new DeviceHost(plainMemory(), start);
    for (let off = 0; off < 0x40; off += 4) host.barRead32(0, off);
  }
  compile(profile('device'), { pid: process.pid });
  if (sys !== undefined && storeBytes !== undefined) reserveStore(sys, storeBytes);
  collectBeforeWaiting();
}
