/**
 * A tiny DMA copy engine used by the sim core tests: write SRC, DST (64-bit IOVAs), LEN, then ring
 * DOORBELL; the engine copies LEN bytes from SRC to DST with DMA, sets STATUS (1 ok, 2 DMA error)
 * and raises MSI-X vector 0. The shape a real model (sim/nvme, sim/e1000e) follows.
 */
import type { PciFunction } from '../../sim/pci.js';
import type { DeviceModel } from '../../sim/model.js';
import { RegisterTable } from '../../sim/regs.js';
import type { DeviceWork } from '../../sim/sched.js';

export const REG = { SRC_LO: 0x00, SRC_HI: 0x04, DST_LO: 0x08, DST_HI: 0x0c, LEN: 0x10, DOORBELL: 0x14, STATUS: 0x18, COUNT: 0x1c } as const;

export class CopyEngine implements DeviceModel {
  readonly name = 'copy';
  readonly ids = { vendor: 0x1234, device: 0x5678, classCode: 0x088000, revision: 2 };
  readonly msix = { vectors: 4, bar: 0, tableOffset: 0x2000, pbaOffset: 0x3000 };
  readonly intx = true;
  readonly bars;
  src = 0;
  dst = 0;
  len = 0;
  status = 0;
  count = 0;
  resets = 0;
  fn!: PciFunction;
  work!: DeviceWork;
  private buf = new Uint8Array(1 << 20);

  constructor() {
    this.bars = [
      {
        index: 0,
        size: 0x4000,
        handler: new RegisterTable(0x4000, [
          {
            offset: REG.SRC_LO,
            name: 'SRC_LO',
            read: () => this.src % 2 ** 32,
            write: (v) => {
              this.src = Math.floor(this.src / 2 ** 32) * 2 ** 32 + v;
            },
          },
          {
            offset: REG.SRC_HI,
            name: 'SRC_HI',
            read: () => Math.floor(this.src / 2 ** 32),
            write: (v) => {
              this.src = (this.src % 2 ** 32) + v * 2 ** 32;
            },
          },
          {
            offset: REG.DST_LO,
            name: 'DST_LO',
            write: (v) => {
              this.dst = Math.floor(this.dst / 2 ** 32) * 2 ** 32 + v;
            },
          },
          {
            offset: REG.DST_HI,
            name: 'DST_HI',
            write: (v) => {
              this.dst = (this.dst % 2 ** 32) + v * 2 ** 32;
            },
          },
          {
            offset: REG.LEN,
            name: 'LEN',
            read: () => this.len,
            write: (v) => {
              this.len = v;
            },
          },
          { offset: REG.DOORBELL, name: 'DOORBELL', write: () => this.work.kick() },
          { offset: REG.STATUS, name: 'STATUS', read: () => this.status },
          { offset: REG.COUNT, name: 'COUNT', read: () => this.count },
        ]),
      },
    ];
  }

  attach(fn: PciFunction): void {
    this.fn = fn;
    this.work = fn.work(() => this.process(), 'sync');
  }

  reset(): void {
    this.src = this.dst = this.len = this.status = this.count = 0;
    this.resets++;
  }

  private process(): void {
    const ok = this.fn.dma.read(this.src, this.buf, 0, this.len) && this.fn.dma.write(this.dst, this.buf, 0, this.len);
    this.status = ok ? 1 : 2;
    this.count++;
    this.fn.interrupt(0);
  }
}
