/**
 * The Platform of a driver container on real VFIO, built from the one device fd it inherited
 * (`Device.fromFd`): config space and BARs through that fd, reset through it, DMA only inside the
 * windows the manager mapped (dma.ts). No container or group fd: it cannot map, and cannot reach
 * another device. Interrupts: none yet (the driver polls): an eventfd cannot be created after
 * confinement, and routing the manager's eventfds through SET_IRQS is the next step.
 */
import type { Clock, ConfigSpace, Interrupts, IrqKind, IrqVector, Platform, RegisterSpace } from '../../drivers/platform.js';
import type { Device, Mmio } from 'vfio-bindings';
import { DmaboxError } from '../../common/errors.js';
import type { GrantAllocator } from './dma.js';

const clock: Clock = {
  now: () => performance.now(),
  sleep: (ms: number) => new Promise<void>((resolve) => {
    if (ms > 0) setTimeout(resolve, ms);
    else setImmediate(resolve);
  }),
};

const noInterrupts: Interrupts = {
  count: (_kind: IrqKind) => 0,
  enable: (kind: IrqKind, n: number): IrqVector[] => {
    throw new DmaboxError('ERR_SANDBOX_IRQ', `cannot enable ${n} ${kind} vector(s): a VFIO container polls (interrupts: polling)`, { fix: "set driver.interrupts: polling in the policy" });
  },
  disable: () => {},
};

export class VfioContainerPlatform implements Platform {
  readonly config: ConfigSpace;
  readonly irq = noInterrupts;
  readonly clock = clock;
  private readonly bars: (Mmio | undefined)[] = [];

  constructor(readonly name: string, private readonly device: Device, readonly dma: GrantAllocator) {
    this.config = device.config;
  }

  bar(index: number): RegisterSpace {
    let b = this.bars[index];
    if (!b) this.bars[index] = b = this.device.mapBar(index);
    return b;
  }

  reset(): void {
    this.device.reset();
  }

  close(): void {
    // The BAR mappings go with the process; the manager quarantines the device.
  }
}
