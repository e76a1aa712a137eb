/**
 * The device process, start to end: spawned by the manager for each incarnation of a simulated
 * sandbox (sandbox/manager/device-process.ts), it holds ONLY its device's memory and runs the model.
 *
 * 1. Not dumpable (PR_SET_DUMPABLE 0: no /proc/PID/mem or ptrace by another process of its uid);
 *    START read from fd 3 (sandbox/abi/device.ts).
 * 2. The model attached and every inherited memfd mapped (device.ts): the windows at their IOVAs in
 *    its IOMMU domain, the NVMe namespace's store, the register mailbox; the interrupt eventfds kept.
 * 3. Confined: no_new_privs and the 'device' seccomp profile (no open, no socket, no exec); READY.
 * 4. Serving: the register mailbox (mailbox.ts, hybrid-polled for `pollMs` after each entry), the
 *    model's deferred work, its interrupts (eventfd writes), its DMA through the simulated IOMMU;
 *    FAULT for every refused transfer (at most FAULTS_PER_SECOND, the rest counted), HEARTBEAT with
 *    the counters every `heartbeatMs`; QUARANTINE answered, RELEASE ends it.
 *
 * The manager's channel closing ends the process: there is nobody left to serve.
 */
import { Socket } from 'node:net';
import { defaultSys, type Sys } from 'linux-sys';
import { mapShared } from '../abi/shm.js';
import { HybridPoller } from '../abi/hybrid-poll.js';
import {
  DEVICE_FD,
  DeviceMsg,
  decodeQuarantine,
  decodeStart,
  encodeDeviceError,
  encodeFault,
  encodeHeartbeat,
  encodeLog,
  encodeQuarantined,
  frame,
  FrameReader,
  MAX_TO_DEVICE,
  type DeviceStart,
} from '../abi/device.js';
import { confine } from '../seccomp/confine.js';
import { DeviceHost } from './device.js';
import { HostMailbox } from './mailbox.js';

const PR_SET_DUMPABLE = 4;
/** Faults sent per second at most; the others are counted in the next one sent. */
export const FAULTS_PER_SECOND = 50;
/** Device-error frames a device process sends per second at most (the first one already resets the function). */
export const ERRORS_PER_SECOND = 10;
/** Exit codes: START refused, the channel lost. */
export const DEVICE_EXIT = { OK: 0, START: 2, CHANNEL: 3 } as const;

export interface DeviceRunOptions {
  sys?: Sys;
  /** Test fixtures: run once the model is up, before confinement (a fixture's own controls). */
  beforeConfine?: (d: { host: DeviceHost; send: (f: Uint8Array) => void }) => void;
  /** Test fixtures: run after READY (a device process that misbehaves). */
  afterReady?: (d: { host: DeviceHost; send: (f: Uint8Array) => void }) => void;
}

export function runDevice(options: DeviceRunOptions = {}): void {
  const sys = options.sys ?? defaultSys();
  sys.prctl(PR_SET_DUMPABLE, 0);
  const sock = new Socket({ fd: DEVICE_FD.CHANNEL, readable: true, writable: true });
  const send = (f: Uint8Array): void => {
    if (!sock.destroyed) sock.write(f);
  };
  const log = (level: number, text: string): void => send(encodeLog(level, text));
  const reader = new FrameReader(MAX_TO_DEVICE);
  let served: Served | undefined;
  sock.on('close', () => process.exit(DEVICE_EXIT.CHANNEL));
  sock.on('error', () => process.exit(DEVICE_EXIT.CHANNEL));
  sock.on('data', (chunk: Buffer) => {
    let frames: [number, Uint8Array][];
    try {
      frames = reader.push(chunk);
    } catch (e) {
      process.stderr.write(`device process: ${(e as Error).message}\n`);
      process.exit(DEVICE_EXIT.CHANNEL);
    }
    for (const [type, payload] of frames) {
      if (type === DeviceMsg.START && served === undefined) {
        try {
          served = serve(sys, decodeStart(payload), send, log, options.beforeConfine);
        } catch (e) {
          log(0, `device process cannot start: ${(e as Error).message.split('\n')[0]}`);
          sock.end(() => process.exit(DEVICE_EXIT.START));
          return;
        }
        options.afterReady?.({ host: served.host, send });
      } else if (type === DeviceMsg.QUARANTINE && served) {
        const seq = decodeQuarantine(payload);
        send(encodeQuarantined(seq, served.host.quarantine()));
      } else if (type === DeviceMsg.RELEASE) {
        served?.close();
        sock.end(() => process.exit(DEVICE_EXIT.OK));
      }
    }
  });
}

interface Served {
  host: DeviceHost;
  close(): void;
}

function serve(
  sys: Sys,
  start: DeviceStart,
  send: (f: Uint8Array) => void,
  log: (level: number, text: string) => void,
  beforeConfine: DeviceRunOptions['beforeConfine'],
): Served {
  const host = new DeviceHost(sys, start);
  // Faults: at most FAULTS_PER_SECOND a second reach the manager, the rest are counted in the next.
  let windowStart = 0,
    sent = 0,
    suppressed = 0;
  host.machine.iommu.on('fault', (f: { device: string; iova: number; length: number; access: 'read' | 'write'; reason: string; vtdReason: number | null }) => {
    const now = performance.now();
    if (now - windowStart >= 1000) {
      windowStart = now;
      sent = 0;
    }
    if (++sent > FAULTS_PER_SECOND) {
      suppressed++;
      return;
    }
    send(encodeFault({ iova: BigInt(f.iova), length: f.length, access: f.access, reason: f.reason as never, vtdReason: f.vtdReason, suppressed }));
    suppressed = 0;
  });
  // Device errors (the function's AER signal): at most ERRORS_PER_SECOND a second, the rest dropped
  // (the first already makes the supervisor reset the function).
  let errorWindow = 0,
    errorsSent = 0;
  host.fn.errorSink = (cause) => {
    const now = performance.now();
    if (now - errorWindow >= 1000) {
      errorWindow = now;
      errorsSent = 0;
    }
    if (++errorsSent <= ERRORS_PER_SECOND) send(encodeDeviceError(cause));
  };
  const shm = mapShared(sys, start.mailbox.fdSlot, start.mailbox.bytes);
  const mailbox = new HostMailbox(sys, shm, start.mailbox.kickFdSlot, host, (reason) =>
    send(frame(DeviceMsg.VIOLATION, new TextEncoder().encode(reason.slice(0, 256)))),
  );
  const poller = new HybridPoller({ idleMs: start.pollMs, queues: () => [mailbox], yield: () => sys.schedYield() });
  mailbox.start(() => poller.wake());
  let seq = 0;
  const beat = setInterval(
    () => send(encodeHeartbeat(++seq, { ...host.counters(), 'mailbox.applied': mailbox.applied, 'mailbox.refused': mailbox.refused })),
    start.heartbeatMs,
  );
  beforeConfine?.({ host, send });
  if (start.seccomp !== 'none') confine('device', sys);
  log(
    2,
    `device process pid ${process.pid}: ${start.model.kind} at ${start.address}, ${start.mappings.length} mapping(s), ${start.seccomp === 'none' ? 'UNCONFINED' : 'confined'}`,
  );
  send(frame(DeviceMsg.READY));
  return {
    host,
    close() {
      clearInterval(beat);
      poller.close();
      mailbox.close();
    },
  };
}
