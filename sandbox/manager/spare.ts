/**
 * A spare: a driver container or a device process started ahead of need, so that a restart does
 * not wait for a process launch and Node's start-up (sandbox/abi/handover.ts has the protocol).
 *
 * A spare is launched exactly as the process it will become (its sandbox's own identity for its
 * role, a cgroup of its own with the policy's limits, the namespaces, the same program and flags,
 * and V8's --no-lazy after the Node binary) with the single argument `spare` and, on fds
 * 3 .. 3 + SPARE_SLOTS - 1, only its end of a fresh socketpair: before it takes over it holds
 * nothing of its sandbox (no device fd, no register mailbox, no window, no eventfd) and is not
 * confined yet, as a freshly launched process is not before its own confinement step. A spare
 * container may be prepared: sent, at its launch, its sandbox's driver code and seccomp profile
 * (PREPARE), it confines itself and evaluates the code, confined, before it is needed
 * (sandbox/container/prepare.ts), so the restart's path no longer evaluates it; it still holds no
 * device fd, mailbox, window or eventfd. It takes over when the supervisor makes the next incarnation: `take()`
 * checks it was made for this sandbox, this role and (once the supervisor has seen one) the
 * identity this sandbox's processes of that role run as, then `handOver()` passes the fds that
 * incarnation made, and the spare's socket, pipes and process become the incarnation's.
 * A spare that dies, or is not launched yet when it is wanted, is not used: the process starts cold.
 */
import { AF_UNIX, O_CLOEXEC, SOCK_CLOEXEC, SOCK_STREAM, type Sys } from 'linux-sys';
import { sendHandover, sendPrepare, SPARE_ARG, SPARE_SLOTS } from '../abi/handover.js';
import { createShared } from '../abi/shm.js';
import type { Role } from '../spawner/identity.js';
import type { Launched, LaunchSpec } from '../spawner/launch.js';
import { SandboxError } from './errors.js';
import type { Followed, Launcher } from './launcher.js';

/** The V8 flag a spare runs with (after the Node binary, before the rest of its launch's argv). */
export const EAGER_COMPILE = '--no-lazy';

/** What a spare is launched with: the launch spec of the process it will become, without the fds. */
export type SpareSpec = Omit<LaunchSpec, 'stdout' | 'stderr' | 'fds'>;

/** What a spare container is prepared with (PREPARE): its sandbox's driver code image and the seccomp profile to confine itself with. */
export interface SparePreparation {
  readonly profile: string;
  readonly code: Uint8Array;
}

/** What an incarnation (or device process) takes of a spare: the manager's ends and the process. */
export interface TakenSpare {
  /** The manager's end of fd 3's socketpair (the hypercall or device protocol socket). */
  channel: number;
  /** The read ends of the spare's stdout and stderr. */
  stdout: number;
  stderr: number;
  launched: Launched;
}

export class Spare {
  readonly sandbox: string;
  readonly role: Role;
  /** The process, once launched. */
  launched: Launched | undefined;
  exited = false;
  taken = false;
  private readonly sys: Sys;
  /** The manager's ends: the socket, the stdout and stderr read ends (closed if the spare is not taken). */
  private readonly mine: number[] = [];
  private killed = false;

  /** Whether it was sent PREPARE. */
  readonly prepared: boolean;

  constructor(sys: Sys, launcher: Launcher, spec: SpareSpec, prepare?: SparePreparation) {
    this.sys = sys;
    this.sandbox = spec.sandbox;
    this.role = spec.role;
    this.prepared = prepare !== undefined;
    const theirs: number[] = [];
    try {
      const [channel, child] = sys.socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
      this.mine.push(channel);
      theirs.push(child);
      const [outR, outW] = sys.pipe2(O_CLOEXEC);
      this.mine.push(outR);
      theirs.push(outW);
      const [errR, errW] = sys.pipe2(O_CLOEXEC);
      this.mine.push(errR);
      theirs.push(errW);
      if (prepare) {
        // Queued on the socket before the launch: a fresh copy of the code (what the spare could
        // write into it reaches nobody), its fd held by the message until the spare receives it.
        const code = createShared(sys, `${spec.sandbox}-code`, Math.ceil(prepare.code.length / 4096) * 4096);
        try {
          code.bytes.set(prepare.code);
          sendPrepare(sys, channel, prepare.profile, code.fd);
        } finally {
          code.close();
        }
      }
      const full: LaunchSpec = {
        ...spec,
        // Node, told to compile every function when its script loads (V8's --no-lazy): a spare pays
        // that before it is needed, instead of each function's first call on the restart's path, and
        // the driver's code, evaluated after the takeover, is compiled whole at once rather than call
        // by call through its bring-up and first I/O (measured: 54-56 -> 49-51 ms p50, bench/RESULTS.md).
        argv: [spec.argv[0]!, EAGER_COMPILE, ...spec.argv.slice(1), SPARE_ARG],
        stdout: outW,
        stderr: errW,
        // Its socket on fd 3, repeated on every slot a handover may fill: Node's own fds go above.
        fds: new Array<number>(SPARE_SLOTS).fill(child),
      };
      let started: Promise<Launched>;
      try {
        started = launcher.launch(full);
      } catch (e) {
        started = Promise.reject(e);
      }
      const closeTheirs = (): void => {
        for (const n of theirs.splice(0)) sys.close(n);
      };
      started.then(
        (l) => {
          closeTheirs();
          this.launched = l;
          if (this.killed) l.kill('SIGKILL');
          void l.exit.then(
            () => this.gone(),
            () => this.gone(),
          );
        },
        () => {
          closeTheirs();
          this.gone();
        },
      );
    } catch (e) {
      for (const n of [...this.mine.splice(0), ...theirs]) sys.close(n);
      throw e;
    }
  }

  private gone(): void {
    this.exited = true;
    if (!this.taken) this.closeMine();
  }

  private closeMine(): void {
    for (const n of this.mine.splice(0)) this.sys.close(n);
  }

  /** Launched, alive and not taken: it can take over now. */
  get usable(): boolean {
    return this.launched !== undefined && !this.exited && !this.taken && !this.killed;
  }

  /**
   * Take it for `sandbox`'s process of `role`, whose identity is `uid` (-1: not known yet). Throws
   * ERR_SANDBOX_SPARE for a spare of another sandbox, role or identity, or one not usable.
   */
  take(sandbox: string, role: Role, uid: number): TakenSpare {
    const l = this.launched;
    if (this.sandbox !== sandbox || this.role !== role) {
      throw new SandboxError('ERR_SANDBOX_SPARE', `a spare ${this.role} of sandbox ${this.sandbox} cannot take over sandbox ${sandbox}'s ${role}`, {
        fix: 'a spare serves only the sandbox and role it was launched for',
      });
    }
    if (!l || !this.usable)
      throw new SandboxError('ERR_SANDBOX_SPARE', `the spare ${role} of sandbox ${sandbox} is not running`, { fix: 'start the process cold' });
    if (uid >= 0 && l.uid !== uid) {
      throw new SandboxError('ERR_SANDBOX_SPARE', `the spare ${role} of sandbox ${sandbox} runs as uid ${l.uid}, the sandbox's ${role} as uid ${uid}`, {
        fix: 'a spare serves only processes of its own identity: start the process cold',
      });
    }
    this.taken = true;
    const [channel, stdout, stderr] = this.mine as [number, number, number];
    this.mine.length = 0;
    return { channel, stdout, stderr, launched: l };
  }

  /** Kill a spare not taken (stop, failure, a spare no longer wanted). */
  kill(): void {
    if (this.taken) return;
    this.killed = true;
    if (!this.exited) this.launched?.kill('SIGKILL');
    this.closeMine();
  }
}

/**
 * Hand `fds` (slots 4, 5, ...) to a taken spare behind its channel, before anything else is written
 * there. A spare that cannot take them (gone meanwhile) is killed: its exit then ends the process
 * it was to become, as a crash, and the next one starts cold.
 */
export function handOver(sys: Sys, taken: TakenSpare, fds: readonly number[]): void {
  try {
    sendHandover(sys, taken.channel, fds);
  } catch {
    taken.launched.kill('SIGKILL');
  }
}

/** Follow a taken spare's process as `follow()` follows a launch. */
export function followTaken(taken: TakenSpare, h: Followed): void {
  const l = taken.launched;
  h.launched(l);
  void l.exit.then(
    (x) => h.exited(x),
    (e: unknown) => h.exited({ code: null, signal: null, oom: false }, `its exit could not be read: ${(e as Error).message}`),
  );
}
