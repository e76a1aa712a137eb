/**
 * A spare container prepared ahead of need (sandbox/abi/handover.ts, PREPARE): before its
 * sandbox's container dies, the spare does what a container launched cold does after its launch
 * and before its first hypercall that needs the device, in the same order and under the same rule
 * (no driver code runs unconfined):
 *
 *   not dumpable; the driver code read from the memfd PREPARE passed (then closed); confined with
 *   the profile PREPARE named, and checked; the code evaluated, confined.
 *
 * What it then holds of its sandbox is the driver's code, evaluated: no device fd, no register
 * mailbox, no window, no eventfd (they come with HANDOVER). At the takeover (run.ts) the container
 * still reads the code image handed on fd 4 and uses the evaluated module only if the bytes are
 * the same; otherwise it evaluates the handed code then, as a cold container would. An evaluation
 * that failed here is reported after HELLO, as a cold container reports its own.
 */
import type { Sys } from 'linux-sys';
import { decodeCode, type CodeImage } from '../abi/code.js';
import { confineWith, undumpable } from './bootstrap.js';
import { evaluateDriver, readCodeBytes, type EvaluatedDriver } from './loader.js';

export interface Prepared {
  /** The seccomp profile it is confined with. */
  readonly profile: string;
  /** The code image's bytes, to compare with the image handed over. */
  readonly bytes: Uint8Array;
  /** The line saying it is confined, logged after HELLO. */
  readonly confined: string;
  /** The image evaluated: the entry module's namespace, or why it could not be evaluated. */
  readonly evaluated: { ok: true; driver: EvaluatedDriver } | { ok: false; error: unknown };
  /** Milliseconds the evaluation took (the restart's path no longer pays them). */
  readonly evaluateMs: number;
}

/** Prepare with the code on `fd` (closed here) and seccomp profile `profile`. Throws if the code or the confinement fails. */
export async function prepareSpare(sys: Sys, fd: number, profile: string): Promise<Prepared> {
  undumpable(sys);
  let bytes: Uint8Array;
  let image: CodeImage;
  try {
    bytes = readCodeBytes(fd);
    image = decodeCode(bytes);
  } finally {
    sys.close(fd);
  }
  const confined = confineWith(profile, sys);
  const t0 = performance.now();
  let evaluated: Prepared['evaluated'];
  try {
    evaluated = { ok: true, driver: await evaluateDriver(image) };
  } catch (error) {
    evaluated = { ok: false, error };
  }
  return { profile, bytes, confined, evaluated, evaluateMs: performance.now() - t0 };
}
