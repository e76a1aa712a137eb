/**
 * Shared memory between the manager and a container: a memfd, mapped by both. The manager creates
 * it (`createShared`); the container maps the inherited fd (`mapShared`). Both get the same bytes,
 * a Uint32Array for ring indices (read with Atomics.load: never narrowed, never torn) and a
 * DataView for fields.
 */
import { MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE, type Sys } from 'linux-sys';
import { AbiError } from './errors.js';

export interface Shared {
  readonly fd: number;
  readonly size: number;
  readonly bytes: Uint8Array;
  readonly u32: Uint32Array;
  readonly view: DataView;
  /** Unmap (and close the fd when this side created it). Idempotent. */
  close(): void;
}

function wrap(sys: Sys, fd: number, size: number, ownFd: boolean): Shared {
  let addr: bigint;
  try {
    addr = sys.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
  } catch (e) {
    if (ownFd) sys.close(fd);
    throw new AbiError('ERR_ABI_SHM', `could not map ${size} bytes of shared memory from fd ${fd}`, {
      cause: e,
      fix: 'the fd must be a memfd of at least that size (the manager hands each one over with its size)',
    });
  }
  const buf = sys.view(addr, size);
  let closed = false;
  return {
    fd,
    size,
    bytes: new Uint8Array(buf),
    u32: new Uint32Array(buf),
    view: new DataView(buf),
    close() {
      if (closed) return;
      closed = true;
      sys.munmap(addr, size);
      if (ownFd) sys.close(fd);
    },
  };
}

/** A fresh zeroed memfd of `size` bytes (a multiple of 4096), mapped. */
export function createShared(sys: Sys, name: string, size: number): Shared {
  if (!Number.isSafeInteger(size) || size <= 0 || size % 4096 !== 0) {
    throw new AbiError('ERR_ABI_SHM', `shared memory "${name}": size ${size} is not a positive multiple of 4096`, {
      fix: 'round the size up to whole 4 KiB pages',
    });
  }
  const fd = sys.memfdCreate(`dmabox:${name}`, MFD_CLOEXEC);
  try {
    sys.ftruncate(fd, size);
  } catch (e) {
    sys.close(fd);
    throw new AbiError('ERR_ABI_SHM', `shared memory "${name}": could not size it to ${size} bytes`, {
      cause: e,
      fix: 'the machine is short of memory (memfds count against RAM and the memory cgroup): free some, or make the rings smaller',
    });
  }
  return wrap(sys, fd, size, true);
}

/** Map an inherited memfd (the container's side); the fd stays open. */
export function mapShared(sys: Sys, fd: number, size: number): Shared {
  return wrap(sys, fd, size, false);
}
