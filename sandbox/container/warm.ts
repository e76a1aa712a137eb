/**
 * A spare container's warm-up (sandbox/abi/handover.ts), run before it waits for its fds: the
 * `driver` seccomp filter compiled once (not installed), so its compiler is not compiled by V8 on
 * the restart's path, then one full collection, so none of the start-up's garbage is collected after
 * the takeover. It touches no fd and keeps nothing; the driver's code is not involved (it is read
 * and evaluated only after the takeover, the evaluation after confinement).
 */
import { collectBeforeWaiting } from '../abi/handover.js';
import { compile, profile } from '../seccomp/profiles.js';

export function warmUp(): void {
  compile(profile('driver'), { pid: process.pid });
  collectBeforeWaiting();
}
