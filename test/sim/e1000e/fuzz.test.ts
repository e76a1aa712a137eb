/**
 * A hostile driver against the model: a seeded run of random register writes (ring bases, lengths,
 * heads and tails, control bits) and random descriptor contents. The model must never throw, never
 * touch memory outside the windows it was granted (canary), and every refused access must be in
 * the IOMMU's fault log rather than in memory. MSI-X is enabled now and then, so IVAR's random
 * vector numbers are routed: a vector the function lacks is dropped and counted, never thrown.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SimMachine } from '../../../sim/machine.js';
import { E1000eModel } from '../../../sim/e1000e/model.js';
import { loopback } from '../../../sim/wire.js';
import { REG } from '../../../spec/e1000e/registers.js';
import { MSIX } from '../../../spec/pci/capabilities.js';
import { CAP_MSIX_OFFSET } from '../../../sim/pci.js';

const MSIX_MC = CAP_MSIX_OFFSET + MSIX.MC.offset;
import { DEVICE_READS, DEVICE_READS_WRITES, DEVICE_WRITES } from '../../../drivers/contract/platform.js';
import { prng } from '../../helpers/prng.js';

const { CTRL, RCTL, TCTL } = REG;
const TARGETS = [
  ...(
    [
      'CTRL',
      'RCTL',
      'TCTL',
      'RDBAL',
      'RDBAH',
      'RDLEN',
      'RDH',
      'RDT',
      'TDBAL',
      'TDBAH',
      'TDLEN',
      'TDH',
      'TDT',
      'IMS',
      'IMC',
      'ICS',
      'ICR',
      'IVAR',
      'EIAC',
      'EERD',
      'RAL',
      'RAH',
      'MTA',
      'CTRL_EXT',
    ] as const
  ).map((n) => REG[n].offset),
  0x04000,
  0x0408c,
  0x1fffc,
];
const O = Object.fromEntries(Object.entries(REG).map(([n, r]) => [n, r.offset])) as Record<keyof typeof REG, number>;

for (const seed of [1, 2, 3]) {
  test(`seed ${seed}: 20,000 hostile register writes and descriptors; no throw, canary intact, refusals logged`, () => {
    const machine = new SimMachine();
    const nic = new E1000eModel();
    machine.attach(nic, { address: '0000:00:02.0', workMode: 'sync' });
    loopback(nic);
    const p = machine.platform('0000:00:02.0', { busMaster: true });
    const r = p.bar(0);
    const canary = machine.memory.canary(1 << 16);
    const windows = [
      p.dma.alloc(8192, DEVICE_READS_WRITES, { label: 'rings' }),
      p.dma.alloc(65536, DEVICE_WRITES, { label: 'rx buffers' }),
      p.dma.alloc(65536, DEVICE_READS, { label: 'tx buffers' }),
    ];
    const iovas = windows.map((w) => Number(w.iova));
    const next = prng(seed);
    const addr = (): number => {
      // Mostly inside a window, sometimes just outside, sometimes anywhere.
      const k = next() % 8;
      if (k < 5) return iovas[k % 3]! + (next() % 65536);
      if (k < 7) return iovas[k % 3]! - 4096 + (next() % 4096);
      return next() * 4096;
    };
    const ring = windows[0]!;
    const sane = (base: number, lenReg: number, hReg: number, tReg: number, ctlReg: number, ctl: number): void => {
      // A plausible ring (64 descriptors in the ring window) with random head and tail.
      r.write32(lenReg - 8, base);
      r.write32(lenReg - 4, 0);
      r.write32(lenReg, 64 * 16);
      r.write32(hReg, next() % 64);
      r.write32(ctlReg, ctl);
      r.write32(tReg, next() % 64);
    };
    let worst = 0;
    for (let i = 0; i < 20000; i++) {
      const t0 = performance.now();
      // Random descriptor bytes in the ring window, pointing anywhere, with any length and command.
      const d = (next() % 512) * 16;
      const a = addr();
      ring.view.setUint32(d, a >>> 0, true);
      ring.view.setUint32(d + 4, Math.floor(a / 0x1_0000_0000) >>> 0, true);
      ring.view.setUint32(d + 8, next() % 4 === 0 ? next() : (next() % 2048) | ((next() & 0x2b) << 24), true);
      const k = next() % 10;
      if (k <= 1) sane(iovas[0]!, O.TDLEN, O.TDH, O.TDT, O.TCTL, TCTL.EN.mask | TCTL.PSP.mask);
      else if (k === 2)
        sane(iovas[0]! + 4096, O.RDLEN, O.RDH, O.RDT, O.RCTL, RCTL.EN.mask | RCTL.UPE.mask | RCTL.MPE.mask | RCTL.BAM.mask | (next() & RCTL.BSIZE.mask));
      else if (k === 3) r.write32(O.CTRL, CTRL.SLU.mask | (next() % 4 === 0 ? CTRL.RST.mask : 0));
      else if (k === 4 && next() % 8 === 0) {
        // MSI-X Enable and Function Mask as a driver may set them through config space (IVAR's
        // vector fields then route to vectors 0..7 of the 5 the function has).
        p.config.write16(MSIX_MC, next() & (MSIX.MC.ENABLE.mask | MSIX.MC.FMASK.mask));
        p.config.write16(0x04, p.config.read16(0x04) | 0x6);
      } else {
        const reg = TARGETS[next() % TARGETS.length]!;
        let v = next();
        if (reg === O.RDBAL || reg === O.TDBAL) v = addr() >>> 0;
        if (reg === O.RDBAH || reg === O.TDBAH) v = next() % 16 === 0 ? next() : Math.floor(addr() / 0x1_0000_0000);
        if (reg === O.CTRL) v = (v & ~CTRL.RST.mask) | CTRL.SLU.mask;
        if (reg === O.RCTL) v |= RCTL.EN.mask;
        if (reg === O.TCTL) v |= TCTL.EN.mask;
        if (reg === O.RDLEN || reg === O.TDLEN) v = (next() % 4 === 0 ? v : (next() % 64) * 128) >>> 0;
        if (reg === O.RDH || reg === O.RDT || reg === O.TDH || reg === O.TDT) v = next() % 4 === 0 ? v : next() % 64;
        r.write32(reg, v >>> 0);
      }
      r.read32(TARGETS[next() % TARGETS.length]!);
      worst = Math.max(worst, performance.now() - t0);
    }
    // A step moves at most TX_BUDGET descriptors: far below this even on a loaded machine.
    assert.ok(worst < 500, `the slowest step took ${worst.toFixed(1)} ms`);
    const c = nic.counters;
    assert.ok(c.txFrames > 0 && c.txDmaDropped > 0, `the TX path ran, both ways (${JSON.stringify(c)})`);
    assert.ok(c.rxDmaDropped + machine.function('0000:00:02.0').dma.refused > 0, 'refusals happened');
    assert.ok(machine.memory.intact(canary), 'no byte outside the granted windows changed');
    const fn = machine.function('0000:00:02.0');
    assert.is(fn.faultCount, 0, `no exception inside the model: ${fn.deviceFaults.map((f) => f.message).join('; ')}`);
    assert.ok(c.irqBadVector > 0, 'IVAR named vectors the function does not have, and they were dropped');
    assert.ok(machine.iommu.faultCount > 0, 'the hostile addresses were refused and logged');
    for (const f of machine.iommu.faults()) {
      // A transfer wholly inside a mapped window can only be refused for its direction.
      const inside = windows.some((w) => f.iova >= Number(w.iova) && f.iova + f.length <= Number(w.iova) + w.size);
      if (inside)
        assert.ok(
          f.reason === 'no-write' || f.reason === 'no-read',
          `a fault inside a window is a permission fault (${f.reason} at 0x${f.iova.toString(16)} +${f.length})`,
        );
    }
    if (process.env.FUZZ_VERBOSE) console.log(seed, JSON.stringify(c), machine.iommu.faultCount);
    p.close();
  });
}

test.run();
