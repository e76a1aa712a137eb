/**
 * The namespace store's address range, reserved by a spare device process before it takes over.
 *
 * A device process maps its sandbox's namespace memfd whole (the simulated disk's media, 64 MiB by
 * default, up to GiBs) and views it as one Uint8Array. V8 counts a view's bytes toward its next
 * major collection, so making a view of 128 MiB starts one, and it finishes inside whatever runs
 * next: measured in a spare's takeover, building the NVMe model took 11-12 ms instead of 0.3 ms,
 * the largest step of a restart with spares (bench/RESULTS.md, 2026-12-06 00:23).
 *
 * So a spare, told the store's size by its launch (DMABOX_SPARE_STORE_BYTES), reserves that range
 * before it waits: an anonymous mapping, never touched (MAP_NORESERVE: no memory is charged for
 * it), with its view made and the collection it starts finished then. At takeover the memfd is
 * mapped over the same range (MAP_FIXED): the view made earlier now shows the media, and no new
 * view is made. A size that does not match, or no reservation, maps the store as before.
 */
import { MAP_ANONYMOUS, MAP_FIXED, MAP_NORESERVE, MAP_PRIVATE, MAP_SHARED, PROT_READ, PROT_WRITE, type Sys } from 'linux-sys';
import { SPARE_STORE_ENV } from '../abi/handover.js';
import { DeviceProcessError } from './errors.js';

/** Largest store reserved, and largest memfd the device process maps (koffi.view aborts above 4 GiB, LAB-NOTES). */
export const MAX_RESERVED = 2 ** 31;
const PAGE = 4096;

interface Reservation {
  addr: bigint;
  size: number;
  bytes: Uint8Array;
}

let reserved: Reservation | undefined;

/** The size a spare's environment asks to reserve, or undefined (none, or not a page multiple within bounds). */
export function reservedSizeFromEnv(env: NodeJS.ProcessEnv): number | undefined {
  const text = env[SPARE_STORE_ENV];
  if (text === undefined || !/^[1-9][0-9]{0,15}$/.test(text)) return undefined;
  const n = Number(text);
  return n % PAGE === 0 && n <= MAX_RESERVED ? n : undefined;
}

/** Reserve `size` bytes of address space for the store and make their view now. */
export function reserveStore(sys: Sys, size: number): void {
  if (reserved !== undefined) throw new DeviceProcessError('ERR_DEVICE_START', 'the store is reserved already');
  const addr = sys.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0n);
  reserved = { addr, size, bytes: new Uint8Array(sys.view(addr, size)) };
}

/**
 * The store memfd `fd` of `size` bytes, mapped over the reservation: its bytes through the view
 * made when it was reserved. Undefined when nothing of that size is reserved (map it as usual).
 * Used once; the reservation is gone afterwards.
 */
export function mapOverReservation(sys: Sys, fd: number, size: number): { addr: bigint; bytes: Uint8Array } | undefined {
  const r = reserved;
  if (r === undefined || r.size !== size) return undefined;
  reserved = undefined;
  const at = sys.mmap(r.addr, size, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_FIXED, fd, 0n);
  if (at !== r.addr) {
    throw new DeviceProcessError(
      'ERR_DEVICE_START',
      `the namespace store was mapped at 0x${at.toString(16)}, not over its reservation at 0x${r.addr.toString(16)}`,
    );
  }
  return { addr: at, bytes: r.bytes };
}
