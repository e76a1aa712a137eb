/**
 * The container-only driver-side classes `hostile-abi` and `exhaustion` (campaigns/fault-classes.ts):
 * at the trial's firing point the driver's own code, inside its container, turns on the manager's
 * ABI or on its own resources, once, while the manager has block requests in flight.
 *
 * Points: the block requests the container's service hands the driver (`read` and `write` of the
 * BlockDevice its start returned); a point fires as the injector's points do (`first`, `interval`,
 * `probability`, `times`), before the request goes to the device, so it stays in flight.
 *
 * What a hostile driver reaches is what it is given: its Platform object is the container's, and
 * nothing in a JavaScript realm hides the object's fields (the vm context is no boundary; the
 * manager must treat the other side of every channel as hostile, sandbox/README.md). So the attack
 * takes the container's system-call object and its register mailbox from the Platform, as any
 * driver could:
 *
 *   garbage-hypercall  bytes that are no hypercall frame (no magic) written on the hypercall socket
 *   ring-index         the register ring's TAIL forged far beyond its entries, and a kick
 *   flood              LOG hypercalls far above their rate, as fast as the socket takes them
 *   memory             JavaScript heap held until V8's limit (the container's heap flag) or the
 *                      cgroup's memory limit ends the process
 *   cpu                an endless loop: heartbeats stop, the supervisor's hang detection kills it
 *
 * Expected of the manager: a kill (violation, flood, hang) or the exit of a dead process, a restart,
 * the requests in flight replayed; the campaign's oracle checks the rest. This module is driver code
 * (campaigns/inject/: no Node module, nothing of the sandbox imported).
 */
import type { BlockDevice } from '../../drivers/contract/block.js';
import type { DriverContext } from '../../drivers/contract/driver.js';
import { Rng } from '../../common/prng.js';
import type { Firing, InjectionPlan } from './plan.js';

export const HOSTILE_ABI_ATTACKS = ['garbage-hypercall', 'ring-index', 'flood'] as const;
export const EXHAUSTION_RESOURCES = ['memory', 'cpu'] as const;

/** send(2) flags (linux/socket.h): never block, never SIGPIPE. */
const MSG_DONTWAIT = 0x40;
const MSG_NOSIGNAL = 0x4000;
/** The hypercall frame's magic (sandbox/abi/hypercall/protocol.ts HC_MAGIC, little-endian u16 at byte 0): garbage never starts with it. */
const HC_MAGIC_LO = 0x68;
/** LOG lines in a flood: the manager's LOG bucket is 100/s with a burst of 200 and it kills past 256 drops a second. */
const FLOOD_LINES = 4000;
/** Entries the forged register-ring TAIL runs ahead of the real one, in ring lengths. */
const RING_AHEAD = 4096;

/** The parts of the container's objects an attack uses (found at run time, as a hostile driver would). */
interface SysLike {
  send(fd: number, data: Uint8Array, flags: number): number;
  eventfdWrite(fd: number, value: bigint): void;
}
interface MailboxLike {
  sys: SysLike;
  u32: Uint32Array;
  kickFd: number;
  req: { tail: number; layout: { tail: number; entries: number } };
}

function isSys(v: unknown): v is SysLike {
  return typeof v === 'object' && v !== null && typeof (v as SysLike).send === 'function' && typeof (v as SysLike).eventfdWrite === 'function';
}

function field(o: unknown, key: string): unknown {
  return typeof o === 'object' && o !== null ? (o as Record<string, unknown>)[key] : undefined;
}

/** The register mailbox of a simulated device's Platform (sandbox/container/platform.ts), if that is what this is. */
function mailboxOf(platform: unknown): MailboxLike | undefined {
  const mb = field(platform, 'mb');
  const req = field(mb, 'req');
  const layout = field(req, 'layout');
  if (!isSys(field(mb, 'sys')) || !(field(mb, 'u32') instanceof Uint32Array) || typeof field(mb, 'kickFd') !== 'number') return undefined;
  if (typeof field(req, 'tail') !== 'number' || typeof field(layout, 'tail') !== 'number' || typeof field(layout, 'entries') !== 'number') return undefined;
  return mb as MailboxLike;
}

/** The container's system-call object, from wherever the Platform keeps it (the mailbox, the interrupts, a VFIO platform). */
function sysOf(platform: unknown): SysLike | undefined {
  for (const s of [field(platform, 'sys'), field(field(platform, 'mb'), 'sys'), field(field(platform, 'irq'), 'sys')]) if (isSys(s)) return s;
  return undefined;
}

/** Bytes that are no frame: random, the first never the magic's. */
function garbage(rng: Rng, n: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = rng.below(256);
  if (b[0] === HC_MAGIC_LO) b[0] ^= 1;
  return b;
}

/** The held allocations of a memory attack: module scope, so nothing can collect them. */
const hoard: number[][] = [];
/** Arrays of 128 Ki doubles (about 1 MiB of heap each) taken per turn of the event loop. */
const MIB_PER_TURN = 8;

/**
 * Hold heap, every element written, a few MiB per turn of the event loop: the container stays
 * responsive (heartbeats, requests) while it grows, so what ends it is the memory limit, not the
 * hang detection.
 */
async function exhaustMemory(sleep: (ms: number) => Promise<void>): Promise<void> {
  for (let i = 0; ; i++) {
    for (let k = 0; k < MIB_PER_TURN; k++) hoard.push(new Array<number>(131072).fill(i + k + 0.5));
    await sleep(0);
  }
}

function spin(): never {
  let x = 0;
  for (;;) x = (x * 1103515245 + 12345) >>> 0;
}

/** The plan's firing rule, as the injector's (injector.ts): at or after `first`, on the interval, with the probability, up to `times`. */
class Points {
  private k = 0;
  fired = 0;
  constructor(
    private readonly plan: InjectionPlan,
    private readonly rng: Rng,
  ) {}
  next(): number | undefined {
    const k = this.k++;
    const p = this.plan;
    if (this.fired >= p.times || k < p.first || (k - p.first) % p.interval !== 0) return undefined;
    if (p.probability < 100 && this.rng.below(100) >= p.probability) return undefined;
    this.fired++;
    return k;
  }
}

export interface HostileOptions {
  /** The hypercall socket's fd in the container (sandbox/abi/boot.ts FD.HYPERCALL; the campaign passes it in the plan). */
  hypercallFd: number;
  /** Told of each firing before it takes effect (in a container: a log line the campaign reads back). */
  onFire(f: Firing): void;
}

/**
 * Arm the class of `plan` on the device the driver's start returned: its `read` and `write` count
 * the points, and the one that fires does the attack before the request goes on.
 */
export function armHostile<P>(device: BlockDevice, ctx: DriverContext<P>, plan: InjectionPlan, options: HostileOptions): void {
  const rng = new Rng(plan.seed);
  const points = new Points(plan, rng);
  /** The request that met a memory attack waits for it (the container dies first): it stays in flight until then. */
  let hoarding: Promise<void> | undefined;
  const attack = (point: number): void => {
    const variant = plan.variants.length ? rng.pick(plan.variants) : plan.fault === 'exhaustion' ? 'cpu' : 'garbage-hypercall';
    const fire = (detail: string) => options.onFire({ point, variant, detail });
    switch (variant) {
      case 'memory':
        fire(`holding JavaScript heap, ${MIB_PER_TURN} MiB a turn, until the container dies`);
        hoarding = exhaustMemory((ms) => ctx.platform.clock.sleep(ms));
        break;
      case 'cpu':
        fire('spinning forever at a block request');
        spin();
        break;
      case 'flood':
        fire(`${FLOOD_LINES} LOG hypercalls at once`);
        for (let i = 0; i < FLOOD_LINES; i++) ctx.log('info', `flood ${i}`);
        break;
      case 'ring-index': {
        const mb = mailboxOf(ctx.platform);
        if (!mb) {
          fire('no register mailbox on this platform (a VFIO device): nothing forged');
          break;
        }
        const forged = (mb.req.tail + RING_AHEAD * mb.req.layout.entries) >>> 0;
        fire(`register ring TAIL forged from ${mb.req.tail} to ${forged} (${mb.req.layout.entries} entries), kicked`);
        Atomics.store(mb.u32, mb.req.layout.tail, forged);
        // The producer's own copy of the tail too: the driver's next posts go on from the forged
        // index. Without it the next post stored the real tail back, and a device process that had
        // not drained in between never saw the forgery (1 trial in ~10 ended with no violation).
        if (typeof (mb.req as { tailValue?: unknown }).tailValue === 'number') (mb.req as unknown as { tailValue: number }).tailValue = forged;
        mb.sys.eventfdWrite(mb.kickFd, 1n);
        break;
      }
      default: {
        const sys = sysOf(ctx.platform);
        const bytes = garbage(rng, 16 + rng.below(240));
        if (!sys) {
          fire('no system-call object on this platform: nothing sent');
          break;
        }
        fire(`${bytes.length} garbage bytes on hypercall fd ${options.hypercallFd}`);
        try {
          sys.send(options.hypercallFd, bytes, MSG_DONTWAIT | MSG_NOSIGNAL);
        } catch (e) {
          ctx.log('warn', `campaign: garbage hypercall not sent: ${(e as Error).message}`);
        }
      }
    }
  };
  const read = device.read.bind(device);
  const write = device.write.bind(device);
  const dev = device as { read: BlockDevice['read']; write: BlockDevice['write'] };
  dev.read = (tag, lba, blocks) => {
    const k = points.next();
    if (k !== undefined) attack(k);
    return hoarding ? hoarding.then(() => read(tag, lba, blocks)) : read(tag, lba, blocks);
  };
  dev.write = (tag, lba, blocks, fua) => {
    const k = points.next();
    if (k !== undefined) attack(k);
    return hoarding ? hoarding.then(() => write(tag, lba, blocks, fua)) : write(tag, lba, blocks, fua);
  };
}
