/**
 * DMA memory from memfd: `memfd_create` + `ftruncate` + `mmap(MAP_SHARED)`, so the same pages can be
 * mapped by VFIO (by address) and handed to a driver process (by fd), which maps them again and
 * sees the same bytes. Huge pages (MFD_HUGETLB) are used when the machine has enough free in
 * /proc/meminfo and the block is a whole number of them; otherwise 4 KiB pages.
 *
 * Every syscall goes through the syscall seam (linux-sys's `Sys`); this file only needs the few
 * calls below, so any object with them works (a fake in tests, the koffi seam in real use).
 */
import { readFileSync } from 'node:fs';
import { DmaError } from './errors.js';
import { checkSize, SMALL_PAGE, type DmaMemory, type DmaMemoryOptions, type DmaMemoryProvider } from './memory.js';

/** memfd_create flags (linux/memfd.h). */
export const MFD_CLOEXEC = 0x0001;
export const MFD_HUGETLB = 0x0004;
/** mmap (asm-generic/mman-common.h). */
export const PROT_READ = 1;
export const PROT_WRITE = 2;
export const MAP_SHARED = 0x01;

/** The part of linux-sys's `Sys` seam this provider uses. */
export interface MemfdSys {
  memfdCreate(name: string, flags: number): number;
  ftruncate(fd: number, length: number): void;
  mmap(addr: bigint, length: number, prot: number, flags: number, fd: number, offset: bigint): bigint;
  munmap(addr: bigint, length: number): void;
  view(addr: bigint, length: number): ArrayBuffer;
  close(fd: number): void;
}

export interface HugePageInfo {
  /** Huge page size in bytes (Hugepagesize). */
  size: number;
  /** HugePages_Free. */
  free: number;
}

/** Huge pages as /proc/meminfo reports them, or undefined when the kernel has none configured. */
export function hugePages(meminfo?: string): HugePageInfo | undefined {
  let text = meminfo;
  if (text === undefined) {
    try {
      text = readFileSync('/proc/meminfo', 'utf8');
    } catch {
      return undefined;
    }
  }
  const free = /^HugePages_Free:\s+(\d+)/m.exec(text);
  const size = /^Hugepagesize:\s+(\d+) kB/m.exec(text);
  if (!free || !size) return undefined;
  return { size: Number(size[1]) * 1024, free: Number(free[1]) };
}

export interface MemfdProviderOptions {
  sys: MemfdSys;
  /** 'auto' (default): huge pages when free and the size fits; 'never'; 'always' (error if impossible). */
  hugePages?: 'auto' | 'never' | 'always';
  /** Override /proc/meminfo (tests). */
  meminfo?: string;
  /** Name prefix for the memfds (visible in /proc/PID/fd). */
  name?: string;
}

/** A block of memfd memory, also mappable a second time (`mapAgain`) to prove sharing. */
export interface MemfdMemory extends DmaMemory {
  /** Map the same fd again at a new address: what a driver process given the fd would see. */
  mapAgain(): { bytes: Uint8Array; unmap(): void };
}

export class MemfdMemoryProvider implements DmaMemoryProvider {
  readonly name = 'memfd';
  private readonly sys: MemfdSys;
  private readonly mode: 'auto' | 'never' | 'always';
  private readonly meminfo: string | undefined;
  private readonly prefix: string;
  /** Huge-page blocks handed out, and 4 KiB-page blocks. */
  hugeBlocks = 0;
  smallBlocks = 0;

  constructor(options: MemfdProviderOptions) {
    this.sys = options.sys;
    this.mode = options.hugePages ?? 'auto';
    this.meminfo = options.meminfo;
    this.prefix = options.name ?? 'dmabox-dma';
  }

  allocate(size: number, options: DmaMemoryOptions = {}): MemfdMemory {
    checkSize(size, 'memfd DMA memory');
    const label = options.label ?? 'dma';
    const huge = this.mode === 'never' ? undefined : hugePages(this.meminfo);
    let pageSize = SMALL_PAGE;
    let flags = MFD_CLOEXEC;
    if (huge !== undefined && size % huge.size === 0 && size / huge.size <= huge.free) {
      pageSize = huge.size;
      flags |= MFD_HUGETLB;
    } else if (this.mode === 'always') {
      throw new DmaError(
        'ERR_DMA_MEMORY',
        `memfd DMA memory "${label}": ${size} bytes cannot be backed by huge pages (${huge ? `${huge.free} free of ${huge.size} bytes` : 'none configured'})`,
        {
          fix: 'reserve huge pages (echo N > /proc/sys/vm/nr_hugepages), ask for a multiple of the huge page size, or use hugePages: "auto"',
        },
      );
    }
    const rounded = Math.ceil(size / pageSize) * pageSize;
    const sys = this.sys;
    let fd = -1;
    let addr: bigint | undefined;
    try {
      try {
        fd = sys.memfdCreate(`${this.prefix}:${label}`, flags);
      } catch (e) {
        if ((flags & MFD_HUGETLB) === 0 || this.mode === 'always') throw e;
        // hugetlbfs not usable after all: fall back to small pages.
        flags &= ~MFD_HUGETLB;
        pageSize = SMALL_PAGE;
        fd = sys.memfdCreate(`${this.prefix}:${label}`, flags);
      }
      sys.ftruncate(fd, rounded);
      addr = sys.mmap(0n, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n);
      const bytes = new Uint8Array(sys.view(addr, rounded));
      if (pageSize === SMALL_PAGE) this.smallBlocks++;
      else this.hugeBlocks++;
      const address = addr;
      const theFd = fd;
      let released = false;
      return {
        size: rounded,
        bytes,
        pageSize,
        fd: theFd,
        address,
        label,
        mapAgain() {
          const a = sys.mmap(0n, rounded, PROT_READ | PROT_WRITE, MAP_SHARED, theFd, 0n);
          return { bytes: new Uint8Array(sys.view(a, rounded)), unmap: () => sys.munmap(a, rounded) };
        },
        release() {
          if (released) return;
          released = true;
          sys.munmap(address, rounded);
          sys.close(theFd);
        },
      };
    } catch (e) {
      if (addr !== undefined) sys.munmap(addr, rounded);
      if (fd >= 0) sys.close(fd);
      throw new DmaError('ERR_DMA_MEMORY', `memfd DMA memory "${label}": could not allocate ${rounded} bytes: ${(e as Error).message}`, {
        cause: e,
        fix: 'check free memory and huge page reservations; RLIMIT_MEMLOCK does not apply until the memory is mapped for DMA',
      });
    }
  }
}
