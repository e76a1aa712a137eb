/**
 * The simulated machine a worker reuses across trials: one SimMachine (IOMMU on, or passthrough for
 * `--iommu off`), a canary region no window maps, and a neighbour sandbox's device with a window
 * of its own. Each trial attaches a fresh NVMe model at a fresh PCI address; memory outside the
 * trial's windows (the canary and the neighbour's window) is checked after every trial and
 * restored, so the next trial starts clean.
 */
import { DEVICE_READS_WRITES, type DmaWindow } from '../drivers/contract/platform.js';
import { SimMachine } from '../sim/machine.js';
import type { PhysRegion } from '../sim/memory.js';
import { SimNvme } from '../sim/nvme/controller.js';
import { CampaignError } from './errors.js';
import { digest } from './digest.js';

const NEIGHBOUR = '0000:00:02.0';
const CANARY_BYTES = 64 * 1024;
const NEIGHBOUR_PATTERN = 0x5a;
/**
 * Trials per machine. A machine never forgets a device it attached (nor its store), so a worker
 * starts a fresh machine every so many trials: at 10,000 trials in two workers, without this, the
 * largest worker reached 2.7 GB resident.
 */
const ADDRESSES = 256;

export class Rig {
  readonly machine: SimMachine;
  readonly canary: PhysRegion;
  /** The neighbour window's physical address (what a device reaches of it with no IOMMU). */
  readonly neighbourPhys: number;
  private readonly neighbour: DmaWindow;
  private readonly neighbourDigest: number;
  private used = 0;

  constructor(readonly iommuOff: boolean) {
    this.machine = new SimMachine({ passthrough: iommuOff });
    this.canary = this.machine.memory.canary(CANARY_BYTES, 'campaign canary');
    this.machine.attach(new SimNvme({ serial: 'neighbour', namespaces: [{ blocks: 64 }] }), { address: NEIGHBOUR });
    const p = this.machine.platform(NEIGHBOUR);
    this.neighbour = p.dma.alloc(CANARY_BYTES, DEVICE_READS_WRITES, { label: 'neighbour sandbox window' });
    this.neighbour.bytes.fill(NEIGHBOUR_PATTERN);
    this.neighbourDigest = digest(this.neighbour.bytes);
    const region = this.machine.memory.list().find((r) => r.bytes.buffer === this.neighbour.bytes.buffer);
    if (!region) throw new CampaignError('ERR_CAMPAIGN_WORKER', 'the neighbour window is not in simulated memory', { fix: 'a bug in campaigns/rig.ts' });
    this.neighbourPhys = region.base + (this.neighbour.bytes.byteOffset - region.bytes.byteOffset);
  }

  /** True while fresh PCI addresses remain on this machine. */
  get roomy(): boolean {
    return this.used < ADDRESSES;
  }

  /** A PCI address no trial used on this machine. */
  nextAddress(): string {
    const n = this.used++;
    const bus = 1 + (n >> 8);
    const dev = (n >> 3) & 31;
    const fn = n & 7;
    const hex = (v: number, w: number) => v.toString(16).padStart(w, '0');
    return `0000:${hex(bus, 2)}:${hex(dev, 2)}.${fn}`;
  }

  /** What changed outside the trial's windows since the last call (each restored after it is reported). */
  damageOutsideWindows(): string[] {
    const out: string[] = [];
    if (!this.machine.memory.intact(this.canary)) {
      out.push(`canary at 0x${this.canary.base.toString(16)} changed`);
      this.canary.bytes.fill(this.canary.pattern);
    }
    if (digest(this.neighbour.bytes) !== this.neighbourDigest) {
      out.push(`neighbour sandbox's window at 0x${this.neighbourPhys.toString(16)} changed`);
      this.neighbour.bytes.fill(NEIGHBOUR_PATTERN);
    }
    return out;
  }
}
