/**
 * When a device model does its work. A model wraps its "process what the driver asked for" routine
 * (fetch submission entries, walk a TX ring) in a `DeviceWork`, and calls `kick()` from its
 * doorbell handler. In 'sync' mode the work runs inside the doorbell write (deterministic, good for
 * unit tests); in 'deferred' mode one `setImmediate` runs it after the driver's current batch
 * (kicks coalesce: ten doorbells, one run), which is how a real device overlaps with the CPU.
 *
 * The function's hang switch (`PciFunction.hang()`) stops all its work: kicks are counted and
 * dropped, the device looks wedged, and a driver's timeout path can be tested. `resume()` runs
 * the work once if anything was kicked meanwhile. A function-level reset cancels a scheduled run.
 */
export type WorkMode = 'sync' | 'deferred';

export interface WorkOwner {
  readonly hung: boolean;
  /** Called with an exception the work threw; the owner decides (the PciFunction makes it a device fault). */
  workFailed(error: unknown): void;
}

export class DeviceWork {
  mode: WorkMode;
  /** Kicks that arrived while hung. */
  missed = 0;
  /** Times the work ran. */
  runs = 0;
  private readonly owner: WorkOwner;
  private readonly work: () => void;
  private scheduled = false;
  private running = false;
  private again = false;
  /** Bumped by cancel(): a run scheduled before it does nothing. */
  private generation = 0;

  constructor(owner: WorkOwner, work: () => void, mode: WorkMode = 'deferred') {
    this.owner = owner;
    this.work = work;
    this.mode = mode;
  }

  kick(): void {
    if (this.owner.hung) {
      this.missed++;
      return;
    }
    if (this.mode === 'sync') {
      this.runNow();
    } else if (!this.scheduled) {
      this.scheduled = true;
      const gen = this.generation;
      setImmediate(() => {
        if (gen !== this.generation) return;
        this.scheduled = false;
        if (this.owner.hung) {
          this.missed++;
          return;
        }
        this.runNow();
      });
    }
  }

  /** Drop a scheduled run (function-level reset). */
  cancel(): void {
    this.generation++;
    this.scheduled = false;
    this.missed = 0;
  }

  /** After the hang switch is released: run once if kicks were missed. */
  resumed(): void {
    if (this.missed > 0) {
      this.missed = 0;
      this.kick();
    }
  }

  private runNow(): void {
    // A doorbell written by an interrupt handler inside the work re-runs it, never re-enters it.
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = true;
    try {
      do {
        this.again = false;
        this.runs++;
        this.work();
      } while (this.again && !this.owner.hung);
    } catch (e) {
      this.owner.workFailed(e);
    } finally {
      this.running = false;
    }
  }
}
