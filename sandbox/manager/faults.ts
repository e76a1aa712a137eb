/**
 * The IOMMU fault monitor: every DMA the IOMMU refused becomes an event {device, iova, access,
 * reason}, attributed to a sandbox by PCI address, and the sandbox's policy action is applied
 * (`onIommuFault`: log, restart, stop).
 *
 * Sources: on the simulator, SimIommu's fault events; on real hosts and in the lab, the kernel
 * log (/dev/kmsg): Intel VT-d lines
 *   `DMAR: [DMA Write NO_PASID] Request device [00:01.0] fault addr 0x20000000 [fault reason 0x05] PTE Write access is not set`
 * (older kernels: `[DMA Read] Request device [00:01.0] PASID ffffffff fault addr ...`) and AMD-Vi
 * lines `AMD-Vi: Event logged [IO_PAGE_FAULT device=00:01.0 domain=0x000a address=0x2000 flags=0x0020]`
 * or, on newer kernels, `vfio-pci 0000:00:01.0: AMD-Vi: Event logged [IO_PAGE_FAULT domain=0x000a address=0x2000 flags=0x0020]`
 * (flags bit 5: a write, AMD IOMMU spec §2.5.3 IO_PAGE_FAULT event). The kernel rate-limits these
 * lines (LAB-NOTES: about 3 per 5 s), so counts from kmsg are lower bounds.
 */
import { closeSync, constants as fsConstants, openSync, readSync, statSync } from 'node:fs';
import { defaultSys, type PollHandle, type Sys } from 'linux-sys';
import { SandboxError } from './errors.js';

export interface FaultEvent {
  /** Full PCI address, lower case: `0000:00:01.0`. */
  device: string;
  iova: bigint;
  access: 'read' | 'write';
  /** `not-present`, `no-write`, `VT-d reason 0x05: PTE Write access is not set`, `IO_PAGE_FAULT`, ... */
  reason: string;
  source: 'sim' | 'dmar' | 'amd-vi';
  /** True for refusals by the IOMMU; false for e.g. bus mastering off (not the policy's business). */
  iommu: boolean;
}

const DMAR =
  /DMAR: \[DMA (Read|Write)[^\]]*\] Request device \[(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7])\](?: PASID [0-9a-f]+)? fault addr (?:0x)?([0-9a-f]+)\s*(?:\[fault reason (?:0x)?([0-9a-f]+)\]\s*(.*))?/i;
const AMD_OLD =
  /AMD-Vi: Event logged \[IO_PAGE_FAULT device=(?:([0-9a-f]{4}):)?([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]) domain=0x[0-9a-f]+ address=0x([0-9a-f]+) flags=0x([0-9a-f]+)\]/i;
const AMD_NEW =
  /([0-9a-f]{4}):([0-9a-f]{2}:[0-9a-f]{2}\.[0-7]): AMD-Vi: Event logged \[IO_PAGE_FAULT domain=0x[0-9a-f]+ address=0x([0-9a-f]+) flags=0x([0-9a-f]+)\]/i;

/** Parse one kernel log line (a /dev/kmsg record `pri,seq,usec,flags;text` or plain text); undefined if it is not a fault. */
export function parseFaultLine(line: string): FaultEvent | undefined {
  const text = /^\d+,\d+,\d+,[^;]*;/.test(line) ? line.slice(line.indexOf(';') + 1) : line;
  let m = DMAR.exec(text);
  if (m) {
    const reason = m[5] ? `VT-d reason 0x${m[5].padStart(2, '0')}${m[6] ? `: ${m[6].trim()}` : ''}` : 'VT-d fault';
    return {
      device: `${(m[2] ?? '0000').toLowerCase()}:${m[3]!.toLowerCase()}`,
      iova: BigInt(`0x${m[4]}`),
      access: m[1]!.toLowerCase() as 'read' | 'write',
      reason,
      source: 'dmar',
      iommu: true,
    };
  }
  m = AMD_NEW.exec(text);
  if (m) return amd(m[1], m[2]!, m[3]!, m[4]!);
  m = AMD_OLD.exec(text);
  if (m) return amd(m[1], m[2]!, m[3]!, m[4]!);
  return undefined;
}

function amd(domain: string | undefined, bdf: string, addr: string, flags: string): FaultEvent {
  const write = (parseInt(flags, 16) & 0x20) !== 0;
  return {
    device: `${(domain ?? '0000').toLowerCase()}:${bdf.toLowerCase()}`,
    iova: BigInt(`0x${addr}`),
    access: write ? 'write' : 'read',
    reason: `IO_PAGE_FAULT flags 0x${flags}`,
    source: 'amd-vi',
    iommu: true,
  };
}

/**
 * A fault's kind, a short stable label for counting (the metrics' `kind`): the simulated IOMMU's
 * reason (`not-present`, `no-write`, `no-read`, `no-bus-master`, `unbacked`), `vtd-0x05` for an
 * Intel VT-d fault reason, `io-page-fault` for AMD-Vi, `other` when the reason names none of these.
 */
export function faultKind(f: FaultEvent): string {
  if (f.source === 'amd-vi') return 'io-page-fault';
  if (f.source === 'dmar') {
    const m = /VT-d reason (0x[0-9a-f]{2})/.exec(f.reason);
    return m ? `vtd-${m[1]}` : 'vtd';
  }
  const m = /^(not-present|no-read|no-write|no-bus-master|unbacked)\b/.exec(f.reason);
  return m ? m[1]! : 'other';
}

/** Who a fault goes to: the sandbox owning the device, with its policy action. */
export interface FaultSink {
  /** PCI address of the sandbox's device. */
  readonly address: string;
  readonly action: 'log' | 'restart' | 'stop';
  onFault(event: FaultEvent): void;
}

/**
 * Follows /dev/kmsg (or any file of kernel log lines, for tests) and hands each fault to the sink
 * owning its device; faults of devices no sandbox owns go to `unowned`. Records older than the
 * monitor's start are skipped (kmsg replays the whole buffer on open).
 */
export class KmsgFaultMonitor {
  private fd = -1;
  private poller: PollHandle | undefined;
  private timer: NodeJS.Timeout | undefined;
  private offset = 0;
  private rest = '';
  private readonly buf = Buffer.alloc(8192);
  private readonly sinks = new Map<string, FaultSink>();
  /** Kernel monotonic microseconds at start: older records are history. */
  private readonly sinceUs: bigint;
  faults = 0;
  unowned: FaultEvent[] = [];

  constructor(
    private readonly path = '/dev/kmsg',
    options: { includeHistory?: boolean; sys?: Sys } = {},
  ) {
    this.sinceUs = options.includeHistory ? -1n : process.hrtime.bigint() / 1000n;
    this.sys = options.sys;
  }
  private readonly sys: Sys | undefined;

  add(sink: FaultSink): void {
    this.sinks.set(sink.address.toLowerCase(), sink);
  }

  /** Stop attributing faults to `sink` (its sandbox was removed), unless another took its device since. */
  remove(sink: FaultSink): void {
    const key = sink.address.toLowerCase();
    if (this.sinks.get(key) === sink) this.sinks.delete(key);
  }

  /**
   * /dev/kmsg (a character device): opened non-blocking and polled in the event loop, one record
   * per read, so no thread ever blocks on it. A plain file (tests): read as it grows, every 50 ms.
   */
  start(): void {
    try {
      const device = statSync(this.path).isCharacterDevice();
      this.fd = openSync(this.path, fsConstants.O_RDONLY | (device ? fsConstants.O_NONBLOCK : 0));
      if (device) {
        this.poller = (this.sys ?? defaultSys()).poll(this.fd, () => this.drain(true));
      } else {
        this.timer = setInterval(() => this.drain(false), 50);
        this.timer.unref();
      }
    } catch (e) {
      throw new SandboxError('ERR_FAULTS_KMSG', `cannot follow the kernel log ${this.path}: ${(e as Error).message}`, {
        cause: e,
        fix: 'the manager needs root or CAP_SYSLOG to read /dev/kmsg',
      });
    }
    this.drain(this.poller !== undefined);
  }

  private drain(device: boolean): void {
    if (this.fd < 0) return;
    for (let i = 0; i < 1000; i++) {
      let n: number;
      try {
        n = readSync(this.fd, this.buf, 0, this.buf.length, device ? null : this.offset);
      } catch (e) {
        const code = (e as NodeJS.ErrnoException).code;
        if (code === 'EPIPE') continue; // records overwritten before we read them: lost, go on
        return; // EAGAIN: nothing more now
      }
      if (n <= 0) return;
      this.offset += n;
      // kmsg gives one record per read, without a newline at the end of the last one.
      this.feed(this.buf.toString('utf8', 0, n) + (device ? '\n' : ''));
    }
  }

  /** Feed text (one or more lines); exposed for tests. */
  feed(chunk: string): void {
    const lines = (this.rest + chunk).split('\n');
    this.rest = lines.pop() ?? '';
    for (const line of lines) {
      const ts = /^\d+,\d+,(\d+),/.exec(line);
      if (ts && BigInt(ts[1]!) < this.sinceUs) continue;
      const f = parseFaultLine(line);
      if (!f) continue;
      this.faults++;
      const sink = this.sinks.get(f.device);
      if (sink) sink.onFault(f);
      else this.unowned.push(f);
    }
  }

  close(): void {
    this.poller?.close();
    clearInterval(this.timer);
    if (this.fd >= 0) closeSync(this.fd);
    this.fd = -1;
  }
}

export function describeFault(f: FaultEvent): string {
  return `IOMMU fault: device ${f.device} ${f.access} at iova 0x${f.iova.toString(16)} (${f.reason}, from ${f.source})`;
}
