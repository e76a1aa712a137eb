/**
 * Pinned-memory accounting against RLIMIT_MEMLOCK.
 *
 * VFIO type1 pins every mapped page and charges it to the process's locked memory (VmLck); past
 * RLIMIT_MEMLOCK the kernel refuses MAP_DMA with ENOMEM and logs
 * `vfio_pin_pages_remote: RLIMIT_MEMLOCK (...) exceeded`, which a user rarely sees. We count what
 * we pin and refuse first, with the numbers and the way to raise the limit.
 */
import { readFileSync } from 'node:fs';
import { DmaError } from './errors.js';

export interface MemlockOptions {
  /** The soft RLIMIT_MEMLOCK in bytes (Infinity for unlimited). */
  limit: number;
  /** Bytes already locked by the process when accounting starts (VmLck). */
  alreadyLocked?: number;
}

const kib = (n: number): string => `${Math.ceil(n / 1024)} KiB`;

export class MemlockAccount {
  readonly limit: number;
  /** Bytes locked before this account started. */
  readonly baseline: number;
  /** Bytes this account has charged and not released. */
  charged = 0;

  constructor(options: MemlockOptions) {
    if (!(options.limit >= 0)) throw new DmaError('ERR_DMA_ARG', `memlock limit ${options.limit} is not a byte count`);
    this.limit = options.limit;
    this.baseline = options.alreadyLocked ?? 0;
  }

  /** No limit: everything is allowed, still counted. */
  static unlimited(): MemlockAccount {
    return new MemlockAccount({ limit: Infinity });
  }

  /**
   * From the process: the soft limit (as getrlimit(RLIMIT_MEMLOCK) returned it) and VmLck from
   * /proc/self/status. A process with CAP_IPC_LOCK (root, usually) is not limited by the kernel
   * (vfio_iommu_type1 skips the check), so neither are we; `exempt` says so.
   */
  static fromProcess(softLimit: bigint | number, status?: string): MemlockAccount {
    const text = status ?? procStatus();
    if (hasIpcLock(text)) {
      const a = new MemlockAccount({ limit: Infinity, alreadyLocked: lockedNow(text) });
      a.exempt = true;
      return a;
    }
    const limit = typeof softLimit === 'bigint' ? (softLimit >= 2n ** 63n - 1n ? Infinity : Number(softLimit)) : softLimit;
    return new MemlockAccount({ limit, alreadyLocked: lockedNow(text) });
  }

  /** True when the process holds CAP_IPC_LOCK and the kernel does not enforce the limit. */
  exempt = false;

  get remaining(): number {
    return this.limit - this.baseline - this.charged;
  }

  /** Count `bytes` about to be pinned; throws ERR_DMA_MEMLOCK when that would pass the limit. */
  charge(bytes: number, what: string): void {
    if (this.baseline + this.charged + bytes > this.limit) {
      throw new DmaError(
        'ERR_DMA_MEMLOCK',
        `pinning ${kib(bytes)} for ${what} would exceed RLIMIT_MEMLOCK: ${kib(this.baseline + this.charged)} of ${kib(this.limit)} are locked already`,
        {
          fix: `raise the limit to at least ${kib(this.baseline + this.charged + bytes)}: \`ulimit -l ${Math.ceil((this.baseline + this.charged + bytes) / 1024)}\` in the shell that starts dmabox (as root), LimitMEMLOCK= in its systemd unit, or a "memlock" line in /etc/security/limits.conf; or ask for less DMA memory`,
        },
      );
    }
    this.charged += bytes;
  }

  /** Give back `bytes` charged before; refused (and nothing changed) when more than is charged. */
  release(bytes: number): void {
    if (!(bytes >= 0) || bytes > this.charged) {
      throw new DmaError('ERR_DMA_ARG', `memlock release of ${bytes} bytes: only ${this.charged} are charged (a window released twice?)`, {
        fix: 'release exactly what charge() counted, once',
      });
    }
    this.charged -= bytes;
  }
}

function procStatus(): string {
  try {
    return readFileSync('/proc/self/status', 'utf8');
  } catch {
    return '';
  }
}

/** VmLck of this process in bytes (0 when /proc is not there). */
export function lockedNow(status: string = procStatus()): number {
  const m = /^VmLck:\s+(\d+) kB$/m.exec(status);
  return m ? Number(m[1]) * 1024 : 0;
}

/** CAP_IPC_LOCK is capability 14 (linux/capability.h); CapEff is a hex mask in /proc/PID/status. */
export function hasIpcLock(status: string): boolean {
  const m = /^CapEff:\s+([0-9a-f]+)$/m.exec(status);
  return m !== null && ((BigInt(`0x${m[1]}`) >> 14n) & 1n) === 1n;
}
