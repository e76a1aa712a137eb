/**
 * A model of the Intel 82574L (e1000e): the register and descriptor subset dmabox's driver uses.
 *
 * Source: Intel 82574 GbE Controller Family Datasheet (317694). Registers, fields and descriptors
 * come from spec/e1000e, which the driver shares; QEMU's e1000e in the lab checks both against a
 * second implementation. BAR0 is a register table (sim/regs.ts) whose rows the parts contribute:
 * - this file: the PCI identity, CTRL (RST self-clearing: registers back to their reset values,
 *   RA0 reloaded from the EEPROM; SLU), STATUS (LU when SLU is set and a wire is attached;
 *   1000 Mb/s full duplex), CTRL_EXT, power-on and function-level reset, the wire port;
 * - eeprom.ts: EEC, EERD reads of a 64-word EEPROM holding the MAC address (the NVM map);
 * - interrupts.ts: ICR, ICS, IMS, IMC, IAM, EIAC, IVAR (MSI-X routing), ITR;
 * - rx.ts and filter.ts: the receive engine, RAL/RAH x16, MTA x128;
 * - tx.ts: the transmit engine;
 * - statistics.ts: the statistics block (read-to-clear).
 * Registers no part declares read 0 and ignore writes, and are counted (`registers.unclaimed`).
 * Not modelled: the PHY (MDIC), flow control, interrupt moderation (ITR, RDTR, TIDV are stored,
 * not timed), checksum offload, extended and packet-split descriptors.
 *
 * DMA goes through the simulated IOMMU (sim/dma.ts): see rx.ts and tx.ts for what a refused
 * transfer does. The function's hang switch stops transmit and refuses receive.
 *
 * PCI (as QEMU's e1000e and the 82574L show it): 8086:10d3, class 020000 (Ethernet), BAR0 128 KiB
 * of registers (32-bit memory BAR), BAR3 16 KiB holding the MSI-X table (offset 0) and PBA
 * (offset 0x2000), 5 MSI-X vectors, an INTA# pin.
 */
import { REG, BAR0_SIZE, PCI_ID, MSIX_LAYOUT, MTA_DWORDS, mtaOffset, ralOffset, rahOffset } from '../../spec/e1000e/registers.js';
import { setField } from '../../spec/field.js';
import type { FrameSink, WirePort } from '../wire.js';
import type { BarDecl, DeviceModel, MsixDecl, PciIds } from '../model.js';
import type { PciFunction } from '../pci.js';
import type { FaultPlan } from '../faults/plan.js';
import { E1000eFaultPlan } from './fault-plan.js';
import { RegisterTable, removableBar, type RegisterDef } from '../regs.js';
import { SimError } from '../errors.js';
import { E1000eCore, type E1000eModelCounters } from './core.js';
import { Eeprom } from './eeprom.js';
import { Interrupts } from './interrupts.js';
import { RxEngine } from './rx.js';
import { TxEngine } from './tx.js';
import { Statistics } from './statistics.js';
import { filterRanges } from './filter.js';

export type { SimDeviceDma, E1000eModelCounters } from './core.js';
export type { SimIrqLine } from './interrupts.js';

export interface E1000eModelOptions {
  /** The MAC address stored in the EEPROM; default 52:54:00:12:34:56 (QEMU's default). */
  mac?: Uint8Array | readonly number[];
  /** A device fault plan (sim/faults, an e1000e.* class): the device misbehaves as it says. None by default. */
  faultPlan?: FaultPlan;
}

const { CTRL, STATUS, ICR } = REG;
const CTRL_I = CTRL.offset >>> 2;
const TXDCTL_I = REG.TXDCTL.offset >>> 2;
const MTA_I = mtaOffset(0) >>> 2;
const RAL0_I = ralOffset(0) >>> 2;
const RAH0_I = rahOffset(0) >>> 2;
const RST = CTRL.RST.mask,
  PHY_RST = CTRL.PHY_RST.mask,
  GIO_MASTER_DISABLE = CTRL.GIO_MASTER_DISABLE.mask;
/** CTRL after reset: full duplex, auto-speed detection. */
const CTRL_RESET = (CTRL.FD.mask | CTRL.ASDE.mask) >>> 0;
/** TXDCTL after reset: the reserved bit 22 reads 1. */
const TXDCTL_RESET = REG.TXDCTL.MUST_BE_ONE.mask;
/** STATUS: always full duplex at 1000 Mb/s (10b); LU and GIO_MASTER_ENABLE as the state says. */
const STATUS_FIXED = setField(STATUS.FD.mask, STATUS.SPEED, 0b10);

export class E1000eModel implements WirePort, DeviceModel {
  readonly name = 'e1000e';
  readonly ids: PciIds = { vendor: PCI_ID.VENDOR, device: PCI_ID.DEVICE_82574L, classCode: PCI_ID.CLASS, revision: 0 };
  readonly bars: readonly BarDecl[];
  readonly msix: MsixDecl = { vectors: MSIX_LAYOUT.VECTORS, bar: MSIX_LAYOUT.BAR, tableOffset: MSIX_LAYOUT.TABLE_OFFSET, pbaOffset: MSIX_LAYOUT.PBA_OFFSET };
  readonly intx = true;
  readonly mac: Uint8Array;
  /** BAR0's register table. */
  readonly registers: RegisterTable;
  private readonly core = new E1000eCore();
  private readonly eeprom: Eeprom;
  private readonly irq: Interrupts;
  private readonly stats: Statistics;
  private readonly rx: RxEngine;
  private readonly tx: TxEngine;

  constructor(options: E1000eModelOptions = {}) {
    const mac = options.mac ?? [0x52, 0x54, 0x00, 0x12, 0x34, 0x56];
    if (mac.length !== 6 || !Array.from(mac).every((b) => Number.isInteger(b) && b >= 0 && b <= 0xff)) {
      throw new SimError('ERR_SIM_ARG', `e1000e model: a MAC address is 6 bytes, got [${Array.from(mac).join(', ')}]`, {
        fix: 'pass mac as 6 byte values, e.g. [0x52, 0x54, 0x00, 0x12, 0x34, 0x56]',
      });
    }
    this.mac = Uint8Array.from(mac);
    const core = this.core;
    this.eeprom = new Eeprom(this.mac);
    this.irq = new Interrupts(core);
    this.stats = new Statistics(core.regs);
    this.rx = new RxEngine(core, this.irq, this.stats);
    this.tx = new TxEngine(core, this.irq, this.stats);
    const plan = (core.plan = options.faultPlan === undefined ? null : new E1000eFaultPlan(options.faultPlan, core));
    this.registers = new RegisterTable(
      BAR0_SIZE,
      [...this.general(), ...this.eeprom.registers(core), ...this.irq.registers(), ...this.rx.registers(), ...this.tx.registers()],
      [...filterRanges(core.regs), this.stats.range()],
    );
    // Surprise removal (e1000e.removal): once removed, BAR0 reads all ones and writes go nowhere.
    const bar0 = removableBar(this.registers, plan);
    this.bars = [
      { index: 0, size: BAR0_SIZE, handler: bar0, is64: false },
      { index: MSIX_LAYOUT.BAR, size: MSIX_LAYOUT.BAR_SIZE, handler: new RegisterTable(MSIX_LAYOUT.BAR_SIZE, []), is64: false },
    ];
    this.powerOn();
  }

  /** The device fault plan the model was built with, or null (its injector counts events and firings). */
  get faultPlan(): E1000eFaultPlan | null {
    return this.core.plan;
  }

  /** Counters kept by the model itself (not device registers). */
  get counters(): E1000eModelCounters {
    return this.core.counters;
  }

  /** 'rx' or 'tx' once a descriptor fetch or write-back of that ring was refused: it stays stopped until reset. */
  get ringFault(): 'rx' | 'tx' | null {
    return this.core.ringFault;
  }

  /** DeviceModel: take the function's DMA engine, interrupt line and a work routine for transmit. */
  attach(fn: PciFunction): void {
    const core = this.core;
    core.fn = fn;
    core.dma = fn.dma;
    this.irq.attach({
      msixEnabled: () => fn.msix !== undefined && fn.msix.enabled,
      raise: (v) => {
        fn.interrupt(core.plan === null ? v : core.plan.vector(v));
      },
    });
    this.tx.attach(fn.work(() => this.tx.transmit()));
  }

  /** DeviceModel: function-level reset. */
  reset(): void {
    this.powerOn();
  }

  /**
   * DeviceModel: an exception escaped the model (caught by its PciFunction). The device stops (no
   * transmit, no receive), counts it, and STATUS.GIO_MASTER_ENABLE reads 0 (§10.2.2.2: the device
   * issues no more master requests) beside the function's PCIe Device Status Fatal Error Detected;
   * CTRL.RST or a function-level reset brings it back.
   */
  fail(reason: string): void {
    this.core.counters.deviceFaults++;
    this.core.fatal = reason;
  }

  /** Why the device stopped after an internal error, or null. */
  get fatal(): string | null {
    return this.core.fatal;
  }

  /** STATUS.LU: CTRL.SLU set and a cable plugged in. */
  linkUp(): boolean {
    return this.core.linkUp();
  }

  // ---- wire side (sim/wire.ts) ----

  attachWire(sink: FrameSink | null, burst?: (on: boolean) => void): void {
    const core = this.core;
    const before = core.linkUp();
    core.wire = sink;
    core.wireBurst = sink === null ? null : (burst ?? null);
    if (before !== core.linkUp()) this.irq.cause(ICR.LSC.mask);
  }

  /** A frame arrives from the wire. True when it was written to host memory. */
  receive(frame: Uint8Array, len: number): boolean {
    // Frames arrive from the wire's side (a peer's microtask), outside any work routine: an
    // exception here is the device's fault, never the sender's.
    try {
      return this.rx.receive(frame, len);
    } catch (e) {
      if (this.core.fn === null) throw e;
      this.core.fn.deviceFault('wire', e);
      return false;
    }
  }

  /** The peer starts (true) or ends (false) a burst of frames: write-backs wait for its end. */
  burst(on: boolean): void {
    this.rx.burst(on);
  }

  // ---- reset ----

  /** Power-on and function-level reset: everything to its reset value, the MTA cleared. */
  powerOn(): void {
    this.core.regs.fill(0);
    this.softReset();
  }

  /** CTRL.RST (§10.2.2.1): the MAC's registers to reset values, RA0 reloaded from the EEPROM. The MTA keeps its contents. */
  private softReset(): void {
    const r = this.core.regs,
      m = this.mac;
    const mta = r.slice(MTA_I, MTA_I + MTA_DWORDS);
    r.fill(0);
    r.set(mta, MTA_I);
    r[CTRL_I] = CTRL_RESET;
    r[TXDCTL_I] = TXDCTL_RESET;
    r[RAL0_I] = (m[0]! | (m[1]! << 8) | (m[2]! << 16) | (m[3]! << 24)) >>> 0;
    r[RAH0_I] = (m[4]! | (m[5]! << 8) | REG.RAH.AV.mask) >>> 0;
    this.core.ringFault = null;
    this.core.fatal = null;
    this.rx.reset();
    this.tx.reset();
  }

  /** CTRL, STATUS and CTRL_EXT (§10.2.2). */
  private general(): RegisterDef[] {
    const core = this.core,
      r = core.regs;
    return [
      core.register(
        'CTRL',
        () => r[CTRL_I]!,
        (v) => {
          const wasUp = core.linkUp();
          if (v & RST) this.softReset();
          r[CTRL_I] = (v & ~RST & ~PHY_RST) >>> 0; // both self-clear
          if (wasUp !== core.linkUp()) this.irq.cause(ICR.LSC.mask);
        },
      ),
      core.register('STATUS', () => {
        let s = STATUS_FIXED;
        if (core.linkUp()) s |= STATUS.LU.mask;
        if (!(r[CTRL_I]! & GIO_MASTER_DISABLE) && core.fatal === null) s |= STATUS.GIO_MASTER_ENABLE.mask;
        return s >>> 0;
      }),
      core.stored('CTRL_EXT'),
    ];
  }
}
