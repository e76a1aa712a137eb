/**
 * What a container-mode trial does the same for every target (trial.ts: a disk over NBD;
 * net-trial.ts: a NIC through the TAP bridge): the injection plan its first container carries, the
 * Supervisor with the spec's recovery bounds, the firings read back from the sandbox's events, the
 * host-side `signal` class, the canary, oracle (4) on this process, and the record.
 */
import { readdirSync } from 'node:fs';
import { Rng } from '../../common/prng.js';
import type { Policy } from '../../policies/types.js';
import { FD } from '../../sandbox/abi/boot.js';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { digest } from '../digest.js';
import { FIRED_PREFIX } from '../inject/container.js';
import type { Firing, InjectionPlan } from '../inject/plan.js';
import type { TrialPlan } from '../plan.js';
import type { CampaignSpec } from '../spec.js';
import type { Outcome, TrialRecord } from '../trial.js';

export interface ContainerTrialOptions {
  /** Lines of what happened, for `replay`. */
  log?: (line: string) => void;
  /** QEMU's DMAR trace file (the lab: DMABOX_LAB_DMAR_TRACE). */
  dmarTrace?: string;
}

/**
 * IOVAs a wild DMA aims at for the `canary`, `neighbour` and `unmapped` targets: above every
 * window the manager allocates (its IOVA allocator starts low; the trial checks that no window of
 * the device reaches them), so unmapped in the device's domain.
 */
export const CANARY_IOVA = 0x7f00_0000;
export const NEIGHBOUR_IOVA = 0x7e00_0000;
export const UNMAPPED_IOVA = 0x7d00_0000;

const PAGE = 4096;
const FD_SLACK = 8;
/** The manager's resident memory may grow this much in one trial (a leak per trial shows as a violation). */
const RSS_SLACK = 64 * 1024 * 1024;
export const POLL_MS = 20;

export function fdCount(): number {
  try {
    return readdirSync('/proc/self/fd').length;
  } catch {
    return 0;
  }
}

export function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

export async function until(pred: () => boolean, ms: number): Promise<boolean> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) return false;
    await sleep(POLL_MS);
  }
  return true;
}

/** The class `signal` is the host's doing; every other class is injected in the first container. */
export function hostSide(plan: TrialPlan): boolean {
  return plan.fault === 'signal';
}

/** The plan the first container's injector carries. */
export function containerInjection(spec: CampaignSpec, plan: TrialPlan, device?: InjectionPlan['device']) {
  const params = spec.faults[plan.fault]!;
  return {
    fault: plan.fault,
    seed: plan.injectorSeed,
    first: plan.first,
    probability: params.probability,
    interval: params.interval,
    times: params.times,
    variants: params.variants,
    canary: CANARY_IOVA,
    neighbour: NEIGHBOUR_IOVA,
    unmapped: UNMAPPED_IOVA,
    hypercallFd: FD.HYPERCALL,
    ...(device ? { device } : {}),
  } satisfies InjectionPlan;
}

/** The trial's Supervisor: its first container armed (unless the class is the host's), the spec's recovery bounds, no spares. */
export function trialSupervisor(pol: Policy, spec: CampaignSpec, plan: TrialPlan, injection: ReturnType<typeof containerInjection>): Supervisor {
  const rec = spec.recovery;
  return new Supervisor(pol, {
    ...(hostSide(plan) ? {} : { campaign: { plan: injection } }),
    hangMs: rec.hangMs,
    heartbeatMs: Math.max(50, Math.min(1000, Math.floor(rec.hangMs / 4))),
    helloTimeoutMs: rec.startMs,
    readyTimeoutMs: rec.startMs,
    spares: false,
  });
}

/** What fired, read back from the sandbox's events (`campaign: fired {json}`, inject/container.ts), and when it first did. */
export class FiredLog {
  readonly firings: Firing[] = [];
  firedAt: number | undefined;
  private seen = 0;

  constructor(private readonly s: Supervisor) {}

  scan(): void {
    const events = this.s.events;
    for (; this.seen < events.length; this.seen++) {
      const e = events[this.seen]!;
      const at = e.text.indexOf(FIRED_PREFIX);
      if (at < 0) continue;
      try {
        this.firings.push(JSON.parse(e.text.slice(at + FIRED_PREFIX.length)) as Firing);
      } catch {
        this.firings.push({ point: -1, variant: 'unparsed', detail: e.text.slice(at, at + 200) });
      }
      this.firedAt ??= e.time;
    }
  }

  /** The `signal` class at `point`: SIGKILL or SIGSEGV (drawn from the class's variants) to the container, from the host. */
  signal(spec: CampaignSpec, plan: TrialPlan, point: number, rng: Rng): void {
    const pid = this.s.pid;
    if (pid === undefined) return;
    const params = spec.faults[plan.fault]!;
    const variant = params.variants.length ? rng.pick(params.variants) : 'sigkill';
    const signal = variant === 'sigsegv' ? 'SIGSEGV' : 'SIGKILL';
    this.firings.push({ point, variant, detail: `${signal} to container pid ${pid} from the host` });
    this.firedAt ??= Date.now();
    process.kill(pid, signal);
  }
}

/** Fill `bytes` with the pseudo-random stream of `seed` (the workload's data, the canary). */
export function fill(bytes: Uint8Array, seed: number): void {
  const r = new Rng(seed);
  for (let i = 0; i < bytes.length; i += 4) {
    const v = Math.floor(r.float() * 0x1_0000_0000);
    bytes[i] = v & 0xff;
    bytes[i + 1] = (v >>> 8) & 0xff;
    bytes[i + 2] = (v >>> 16) & 0xff;
    bytes[i + 3] = v >>> 24;
  }
}

/** Memory of this process no device ever has mapped, filled from the trial's seed; `intact()` after the trial. */
export function canary(seed: number): { intact(): boolean } {
  const bytes = new Uint8Array(4 * PAGE);
  fill(bytes, seed);
  const sum = digest(bytes);
  return { intact: () => digest(bytes) === sum };
}

/** Oracle (4): this process (the manager's side) before the trial; `check()` after it lists what grew past its slack. */
export function managerBounds(): { check(): string[] } {
  const fds0 = fdCount();
  const rss0 = process.memoryUsage().rss;
  return {
    check() {
      const out: string[] = [];
      const fds = fdCount();
      if (fds > fds0 + FD_SLACK) out.push(`fds: ${fds0} before the trial, ${fds} after`);
      const rss = process.memoryUsage().rss;
      if (rss > rss0 + RSS_SLACK) out.push(`memory: resident ${rss0 >> 20} MiB before the trial, ${rss >> 20} MiB after`);
      return out;
    },
  };
}

/** The trial's outcome from its violations, the supervisor's events and the client's errors; its events and violations logged. */
export function containerOutcome(s: Supervisor, violations: readonly string[], clientErrors: number, log: (line: string) => void): Outcome {
  const failed = s.events.some((e) => e.kind === 'failed');
  for (const e of s.events) if (e.kind !== 'log' || e.level !== 'debug') log(`${e.kind}: ${e.text}`);
  for (const v of violations) log(`VIOLATION: ${v}`);
  return violations.length ? 'violation' : failed ? 'failed-as-policy-says' : clientErrors ? 'client-saw-error' : 'recovered';
}

/** The record of a container trial. */
export function containerRecord(
  plan: TrialPlan,
  s: Supervisor,
  fired: FiredLog,
  r: Pick<TrialRecord, 'outcome' | 'violations' | 'clientErrors' | 'badReads' | 'writesAcked' | 'iommuFaults' | 'timeToRecoverMs' | 'ms'>,
): TrialRecord {
  return {
    index: plan.index,
    seed: plan.seed,
    fault: plan.fault,
    iommu: true,
    outcome: r.outcome,
    violations: r.violations,
    firings: fired.firings,
    restarts: s.restarts,
    clientErrors: r.clientErrors,
    badReads: r.badReads,
    writesAcked: r.writesAcked,
    iommuFaults: r.iommuFaults,
    timeToRecoverMs: r.timeToRecoverMs,
    ms: r.ms,
  };
}
