/**
 * Where the controller is in its life, shared by the pieces of the driver (admin queue, I/O
 * dispatch, completion engine, recovery), and the errors that follow from it.
 *
 *   init ──> ready <──> resetting ──> failed
 *     └──────────┴──────────┴───────────┴──> closed
 *
 * `ready`: I/O is issued. `resetting`: a controller reset after a timeout is under way; new I/O
 * waits for it. `failed`: the reset did not bring the controller back; everything fails fast
 * with ERR_NVME_FATAL. `closed`: after close(); everything fails with ERR_NVME_CLOSED.
 */
import { NvmeControllerError, NvmeTimeoutError } from './errors.js';

export type Phase = 'init' | 'ready' | 'resetting' | 'failed' | 'closed';

export class ControllerState {
  phase: Phase = 'init';
  /** Why commands are being abandoned right now (the timeout behind a reset), for their errors. */
  abandonReason = '';
  /**
   * The controller ignored CC.EN = 0 (CSTS.RDY stayed set through CAP.TO): it may still read and
   * write the queues and data buffers it was given, so close() keeps that memory instead of
   * freeing it for reuse; only a function reset (FLR) makes it safe again.
   */
  disableIgnored = false;
  private readonly ioTimeoutMs: number;

  constructor(ioTimeoutMs: number) {
    this.ioTimeoutMs = ioTimeoutMs;
  }

  /** Whether I/O may be issued now. */
  get ready(): boolean {
    return this.phase === 'ready';
  }

  /** Whether new work may be queued: the controller is ready, or resetting (the work waits for it). */
  get usable(): boolean {
    return this.phase === 'ready' || this.phase === 'resetting';
  }

  /** The error for new work once the controller can no longer take it (closed, failed, or still initialising). */
  unusable(what: string): NvmeControllerError {
    if (this.phase === 'closed') return new NvmeControllerError('ERR_NVME_CLOSED', `${what}: the controller is closed`, 'open the controller again');
    return new NvmeControllerError('ERR_NVME_FATAL', `${what}: the controller is ${this.phase}`, 'reset the device (FLR) and open it again');
  }

  /** The error for a command abandoned by a reset after a timeout, or by close. */
  abandoned(what: string): NvmeControllerError | NvmeTimeoutError {
    if (this.phase === 'closed') return new NvmeControllerError('ERR_NVME_CLOSED', `${what}: the controller was closed with the command in flight`);
    return new NvmeTimeoutError(
      `${what}: ${this.abandonReason}; the controller was reset and the command failed`,
      'retry the I/O; if it keeps timing out, the device is not answering',
    );
  }

  /** The error for an I/O that completed only because the driver aborted it after a timeout. */
  aborted(what: string): NvmeTimeoutError {
    return new NvmeTimeoutError(
      `${what}: no completion within ${this.ioTimeoutMs} ms; aborted (Abort, §5.1) and failed`,
      'retry the I/O; the controller is still usable',
    );
  }
}
