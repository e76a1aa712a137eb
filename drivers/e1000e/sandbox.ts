/**
 * The e1000e driver as a driver module (drivers/contract/driver.ts), `kind: 'net'`: what the net
 * service of a driver container serves. `start` sizes the driver's rings and buffer pools to the
 * policy's windows (rings of `depth` descriptors, pools of twice the ring or what the windows
 * hold) and opens the NIC with the link allowed to be down (an unplugged cable must not make the
 * container crash-loop).
 */
import { DEVICE_READS, DEVICE_READS_WRITES, DEVICE_WRITES, type DmaPerm } from '../contract/platform.js';
import { DRIVER_CONTRACT, type DriverContext } from '../contract/driver.js';
import type { NetDevice, NetServiceParams } from '../contract/net.js';
import { DESC_SIZE } from '../../spec/e1000e/descriptors.js';
import { BUFFER_SIZE, E1000e } from './device.js';
import { E1000eError } from './errors.js';

export const contract = DRIVER_CONTRACT;
export const name = 'e1000e';
export const kind = 'net';

const PAGE = 4096;

/** The NIC as the net service sees it: the driver itself, with a log line. */
class E1000eNetDevice implements NetDevice {
  constructor(
    readonly nic: E1000e,
    private readonly depth: number,
  ) {}
  get mac(): Uint8Array {
    return this.nic.mac;
  }
  get txPool() {
    return this.nic.txPool;
  }
  get rxPool() {
    return this.nic.rxPool;
  }
  link() {
    return this.nic.link();
  }
  txAlloc(): number {
    return this.nic.txAlloc();
  }
  tx(batch: Parameters<NetDevice['tx']>[0]): number {
    return this.nic.tx(batch);
  }
  rx(batch: Parameters<NetDevice['rx']>[0]): number {
    return this.nic.rx(batch);
  }
  waitRx(timeoutMs: number): Promise<boolean> {
    return this.nic.waitRx(timeoutMs);
  }
  describe(): string {
    const link = this.nic.link();
    return `e1000e ${[...this.nic.mac].map((b) => b.toString(16).padStart(2, '0')).join(':')}: link ${link.up ? `up ${link.speedMbps} Mb/s` : 'down'}, ${this.depth} descriptors per ring, ${this.nic.interrupts}`;
  }
  async close(): Promise<void> {
    try {
      await this.nic.close();
    } catch {
      /* the manager quarantines the device anyway */
    }
    this.nic.platform.close();
  }
}

/** Buffers of BUFFER_SIZE bytes that fit in what the windows of `perm` still hold, less `less` bytes. */
function fit(ctx: DriverContext<NetServiceParams>, perm: DmaPerm, less: number): number {
  const available = ctx.platform.dma.available?.(perm) ?? Number.MAX_SAFE_INTEGER;
  return Math.floor(Math.max(0, available - less) / BUFFER_SIZE);
}

export async function start(ctx: DriverContext<NetServiceParams>): Promise<NetDevice> {
  const depth = ctx.options.depth;
  const ringBytes = Math.ceil((depth * DESC_SIZE) / PAGE) * PAGE;
  const rxBuffers = Math.min(2 * depth, fit(ctx, DEVICE_WRITES, 0));
  const txBuffers = Math.min(2 * depth, fit(ctx, DEVICE_READS, ringBytes));
  const rw = ctx.platform.dma.available?.(DEVICE_READS_WRITES) ?? Number.MAX_SAFE_INTEGER;
  if (rw < ringBytes || rxBuffers < depth + 1 || txBuffers < 1) {
    throw new E1000eError(
      'ERR_E1000E_OPTION',
      `the policy's windows cannot hold the e1000e's rings of ${depth} descriptors: it needs ${ringBytes} bytes device read-write (RX descriptors, status written back), ${ringBytes} + at least ${BUFFER_SIZE} bytes device read-only (TX descriptors and buffers) and ${((depth + 1) * BUFFER_SIZE) / 1024} KiB device write-only (RX buffers)`,
      {
        fix: `add a window { size: 64KiB, access: read-write } and a 'split' window of at least ${Math.ceil(((depth + 1) * 2 * BUFFER_SIZE + ringBytes) / 2 ** 20)} MiB, or lower driver.depth`,
      },
    );
  }
  const nic = await E1000e.open(ctx.platform, {
    rxDescriptors: depth,
    txDescriptors: depth,
    rxBuffers,
    txBuffers,
    interrupts: ctx.options.interrupts === 'msix' ? 'msix' : 'poll',
    requireLink: false,
    linkTimeoutMs: 1000,
  });
  return new E1000eNetDevice(nic, depth);
}
