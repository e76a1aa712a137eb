/**
 * The decision a device model asks at each eligible event: does the fault fire now? Counts
 * events and firings the way Linux's fault-injection attributes do (`after`, `interval`,
 * `probability`, `times`), drawing only from the plan's seed, so a trial replays exactly.
 * No allocation per call; a model that has no plan never holds an injector at all.
 */
import { Rng } from '../../common/prng.js';
import type { FaultPlan } from './plan.js';

export class FaultInjector {
  /** Eligible events seen, and how many fired. */
  events = 0;
  fired = 0;
  /** The plan's random stream, for class-specific choices (which byte, which value). */
  readonly rng: Rng;
  private readonly probability: number;
  private readonly interval: number;
  private readonly times: number;
  private readonly after: number;
  private disarmed = false;

  constructor(readonly plan: FaultPlan) {
    this.rng = new Rng(plan.seed);
    this.probability = plan.params['probability'] as number;
    this.interval = plan.params['interval'] as number;
    this.times = plan.params['times'] as number;
    this.after = plan.params['after'] as number;
  }

  /** One eligible event: true when the fault fires on it. */
  fire(): boolean {
    const n = ++this.events - this.after;
    if (n <= 0 || this.spent || n % this.interval !== 0) return false;
    if (this.probability < 1 && !this.rng.chance(this.probability)) return false;
    this.fired++;
    return true;
  }

  /** No firing is left (`times` reached, or disarmed): the device behaves from now on. */
  get spent(): boolean {
    return this.disarmed || (this.times >= 0 && this.fired >= this.times);
  }

  /** Fire no more, whatever `times` says (a campaign's check that the driver recovers once the device behaves). */
  disarm(): void {
    this.disarmed = true;
  }

  /** A string parameter of the plan (an enum's value). */
  text(name: string): string {
    return String(this.plan.params[name]);
  }

  /** A numeric parameter of the plan. */
  num(name: string): number {
    return Number(this.plan.params[name]);
  }

  /** For reports: `nvme.wrong-phase fired 3 of 120 events`. */
  summary(): string {
    return `${this.plan.cls.name} fired ${this.fired} of ${this.events} eligible events`;
  }
}
