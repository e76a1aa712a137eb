/**
 * The lab's serial console: split into lines, stamped with the time since QEMU started, and read
 * for the `dmabox-lab:` markers the guest's /init prints (init-script.ts). Also the decoding of
 * QEMU's exit status into the guest command's.
 */
import { INIT_FAILED_STATUS } from './init-script.js';

/** `[  12.345]` : seconds since QEMU started, the prefix of every line in the lab log. */
export function stamp(ms: number): string {
  return `[${(ms / 1000).toFixed(3).padStart(8)}]`;
}

/**
 * Splits a byte stream into lines (CR LF or LF; the serial console sends CR LF), calling `onLine`
 * for each complete line; `flush` emits the last partial line.
 */
export class LineSplitter {
  private rest = '';
  constructor(private readonly onLine: (line: string) => void) {}
  push(chunk: string): void {
    const text = this.rest + chunk;
    const parts = text.split('\n');
    this.rest = parts.pop()!;
    for (const p of parts) this.onLine(p.replace(/\r+$/, ''));
  }
  flush(): void {
    if (this.rest) {
      const r = this.rest;
      this.rest = '';
      this.onLine(r.replace(/\r+$/, ''));
    }
  }
}

/** What the console said about the run, gathered line by line. */
export interface ConsoleState {
  /** Host ms since QEMU start when /init printed its first marker. */
  initAtMs?: number;
  /** Guest uptime (s) at /init, when it said. */
  initUptime?: number;
  /** Host ms when the guest command started and ended. */
  runAtMs?: number;
  doneAtMs?: number;
  /** Devices /init bound to vfio-pci. */
  bound: { bdf: string; id: string; group: number }[];
  /** The status /init reported (`dmabox-lab: exit N`). */
  exitStatus?: number;
  /** The error /init reported before running the command. */
  initError?: string;
  /** The guest kernel panicked. */
  panic?: string;
}

export function newConsoleState(): ConsoleState {
  return { bound: [] };
}

const MARKER = /^dmabox-lab: (\w+)(?: (.*))?$/;

/** Update `state` from one console line seen `ms` after QEMU started. */
export function readConsoleLine(state: ConsoleState, line: string, ms: number): void {
  if (line.includes('Kernel panic - not syncing')) {
    state.panic ??= line.trim();
    return;
  }
  const m = MARKER.exec(line.trim());
  if (!m) return;
  const arg = m[2] ?? '';
  switch (m[1]) {
    case 'init':
      state.initAtMs = ms;
      {
        const u = Number(arg);
        if (Number.isFinite(u) && arg) state.initUptime = u;
      }
      break;
    case 'bound': {
      const b = /^(\S+) (\S+) group (\d+)$/.exec(arg);
      if (b) state.bound.push({ bdf: b[1]!, id: b[2]!, group: Number(b[3]) });
      break;
    }
    case 'run':
      state.runAtMs = ms;
      break;
    case 'done':
      state.doneAtMs = ms;
      break;
    case 'error':
      state.initError ??= arg;
      break;
    case 'exit':
      if (/^\d+$/.test(arg)) state.exitStatus = Number(arg);
      break;
  }
}

export type GuestOutcome =
  | { kind: 'exited'; status: number }
  | { kind: 'init-failed'; reason: string }
  /** `emulatorCrash`: QEMU itself died of a fault signal (SIGSEGV, ...), not the guest. */
  | { kind: 'died'; reason: string; emulatorCrash?: true };

/** Signals that mean QEMU itself crashed (a fault in the emulator), not that something killed it. */
export const EMULATOR_CRASH_SIGNALS: ReadonlySet<string> = new Set(['SIGSEGV', 'SIGBUS', 'SIGILL', 'SIGFPE', 'SIGABRT']);

/**
 * Decide what happened from QEMU's exit and what the guest reported. The guest's own report (the rc
 * file in the run channel, or the console marker) wins; QEMU's status is decoded as
 * isa-debug-exit's (rc << 1) | 1 only when both are missing, since status 1 is also QEMU's own error.
 * QEMU exiting 0 means the guest powered off or panicked (-no-reboot) without reporting.
 */
export function decideOutcome(qemu: { code: number | null; signal: string | null }, state: ConsoleState, rcFile?: number): GuestOutcome {
  if (state.initError !== undefined) return { kind: 'init-failed', reason: state.initError };
  const reported = rcFile ?? state.exitStatus;
  if (reported !== undefined) {
    if (reported === INIT_FAILED_STATUS && state.runAtMs === undefined)
      return { kind: 'init-failed', reason: 'the guest /init failed before running the command' };
    return { kind: 'exited', status: reported };
  }
  if (state.panic) return { kind: 'died', reason: `guest kernel panic: ${state.panic}` };
  if (qemu.signal) {
    if (EMULATOR_CRASH_SIGNALS.has(qemu.signal)) return { kind: 'died', reason: `QEMU itself crashed (${qemu.signal})`, emulatorCrash: true };
    return { kind: 'died', reason: `QEMU was killed by ${qemu.signal}` };
  }
  if (qemu.code === 0) return { kind: 'died', reason: 'the guest shut down without reporting an exit status' };
  if (qemu.code !== null && (qemu.code & 1) === 1 && qemu.code > 1) return { kind: 'exited', status: qemu.code >> 1 };
  return { kind: 'died', reason: `QEMU exited with status ${qemu.code} and the guest reported nothing (QEMU error? see its messages in the log)` };
}

/** isa-debug-exit: the guest writes `value`, QEMU exits with (value << 1) | 1; this undoes it. */
export function decodeDebugExit(qemuStatus: number): number | undefined {
  return (qemuStatus & 1) === 1 ? qemuStatus >> 1 : undefined;
}
