/**
 * The Platform of a driver container on real VFIO, built from the one device fd it inherited
 * (`Device.fromFd`): config space and BARs through that fd, reset through it, DMA only inside the
 * windows the manager mapped (dma.ts). No container or group fd: it cannot map, and cannot reach
 * another device. Interrupts: a confined process cannot create eventfds, so the manager creates
 * them and hands them over (IRQ_SETUP); the container routes them to the device's MSI-X vectors
 * with VFIO_DEVICE_SET_IRQS on its device fd (an ioctl, allowed after confinement).
 */
import type { Clock, ConfigSpace, Interrupts, Platform, RegisterSpace } from '../../drivers/contract/platform.js';
import { encodeIrqSetEventfds, encodeIrqSetNone, IOCTL, VFIO, type Device, type Mmio } from 'vfio-bindings';
import { type Sys } from 'linux-sys';
import { containerClock } from './clock.js';
import type { GrantAllocator } from './dma.js';
import { EventfdInterrupts, type IrqRouter } from './platform.js';

function safeCount(device: Device, kind: 'msix' | 'intx'): number {
  try {
    return device.irqCount(kind);
  } catch {
    return 0;
  }
}

const IRQ_INDEX = { msix: VFIO.VFIO_PCI_MSIX_IRQ_INDEX, intx: VFIO.VFIO_PCI_INTX_IRQ_INDEX } as const;

export class VfioContainerPlatform implements Platform {
  readonly config: ConfigSpace;
  readonly irq: Interrupts;
  readonly clock: Clock;
  private readonly bars: (Mmio | undefined)[] = [];

  /** `irqFds`: the eventfds the manager handed over (IRQ_SETUP), vector i on irqFds[i]. */
  constructor(
    readonly name: string,
    private readonly device: Device,
    readonly dma: GrantAllocator,
    sys: Sys,
    irqFds: readonly number[],
  ) {
    this.clock = containerClock(sys);
    this.config = device.config;
    let routed: number | undefined;
    const router: IrqRouter = {
      route: (kind, n) => {
        sys.ioctl(device.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetEventfds(IRQ_INDEX[kind], 0, irqFds.slice(0, n)));
        routed = IRQ_INDEX[kind];
        return n;
      },
      unroute: () => {
        if (routed === undefined) return;
        // DATA_NONE | ACTION_TRIGGER with count 0: stop signalling (VFIO_DEVICE_SET_IRQS, linux/vfio.h).
        sys.ioctl(device.fd, IOCTL.VFIO_DEVICE_SET_IRQS, encodeIrqSetNone(routed, VFIO.VFIO_IRQ_SET_ACTION_TRIGGER, 0, 0));
        routed = undefined;
      },
    };
    const counts = { msix: safeCount(device, 'msix'), intx: safeCount(device, 'intx') };
    this.irq = new EventfdInterrupts(sys, router, counts, irqFds);
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
