/**
 * The register map and descriptor layouts as data: sizes, offsets, alignment, no overlaps, and
 * values checked against the datasheet's tables (82574 §7.1.4, §7.2.10.1, §10.2).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REG, STAT, STAT32, STAT64, STAT_FIRST, STAT_LAST, BAR0_SIZE, CTRL, STATUS, RCTL, ICR, RAH, EERD,
  rctlBufferSize, statusSpeed } from '../../../spec/e1000e/registers.js';
import { DESC_SIZE, RXD, TXD, RXD_STATUS, TXD_CMD, TXD_STA } from '../../../spec/e1000e/descriptors.js';
import { PacketBatch } from '../../../drivers/contract/packet-batch.js';

/** Field widths in bytes, per the datasheet's descriptor tables. */
const RXD_WIDTH: Record<keyof typeof RXD, number> = { BUFFER_ADDR: 8, LENGTH: 2, CSUM: 2, STATUS: 1, ERRORS: 1, SPECIAL: 2 };
const TXD_WIDTH: Record<keyof typeof TXD, number> = { BUFFER_ADDR: 8, LENGTH: 2, CSO: 1, CMD: 1, STA: 1, CSS: 1, SPECIAL: 2 };

function tiles(layout: Record<string, number>, width: Record<string, number>): void {
  const covered = new Uint8Array(DESC_SIZE);
  for (const [name, off] of Object.entries(layout)) {
    const w = width[name]!;
    assert.ok(w > 0, `${name} has a width`);
    assert.is(off % w === 0 || w > 8, true, `${name} at ${off} is naturally aligned`);
    for (let i = off; i < off + w; i++) {
      assert.ok(i < DESC_SIZE, `${name} ends inside the 16-byte descriptor`);
      assert.is(covered[i], 0, `${name} overlaps another field at byte ${i}`);
      covered[i] = 1;
    }
  }
  assert.ok(covered.every((c) => c === 1), 'the fields cover all 16 bytes');
}

test('legacy RX descriptor (§7.1.4): 16 bytes, address 0, length 8, checksum 10, status 12, errors 13, special 14', () => {
  assert.is(DESC_SIZE, 16);
  tiles(RXD, RXD_WIDTH);
  assert.equal({ ...RXD }, { BUFFER_ADDR: 0, LENGTH: 8, CSUM: 10, STATUS: 12, ERRORS: 13, SPECIAL: 14 });
  assert.is(RXD_STATUS.DD, 0x01);
  assert.is(RXD_STATUS.EOP, 0x02);
});

test('legacy TX descriptor (§7.2.10.1): 16 bytes, address 0, length 8, CSO 10, CMD 11, STA 12, CSS 13, special 14', () => {
  tiles(TXD, TXD_WIDTH);
  assert.equal({ ...TXD }, { BUFFER_ADDR: 0, LENGTH: 8, CSO: 10, CMD: 11, STA: 12, CSS: 13, SPECIAL: 14 });
  assert.equal([TXD_CMD.EOP, TXD_CMD.IFCS, TXD_CMD.RS, TXD_CMD.DEXT], [0x01, 0x02, 0x08, 0x20]);
  assert.is(TXD_STA.DD, 0x01);
});

test('registers: 4-byte aligned, inside BAR0, no two at one offset; the ring registers where §10.2 puts them', () => {
  const seen = new Map<number, string>();
  for (const [name, off] of [...Object.entries(REG), ...Object.entries(STAT)]) {
    assert.is(off % 4, 0, `${name} aligned`);
    assert.ok(off >= 0 && off < BAR0_SIZE, `${name} inside BAR0`);
    assert.not.ok(seen.has(off), `${name} and ${seen.get(off)} share 0x${off.toString(16)}`);
    seen.set(off, name);
  }
  // Queue 0 registers: base, length, head, tail at +0, +8, +0x10, +0x18 of 0x2800 (RX) and 0x3800 (TX).
  assert.equal([REG.RDBAL, REG.RDBAH, REG.RDLEN, REG.RDH, REG.RDT], [0x2800, 0x2804, 0x2808, 0x2810, 0x2818]);
  assert.equal([REG.TDBAL, REG.TDBAH, REG.TDLEN, REG.TDH, REG.TDT], [0x3800, 0x3804, 0x3808, 0x3810, 0x3818]);
  assert.equal([REG.CTRL, REG.STATUS, REG.EERD, REG.ICR, REG.IMS, REG.IMC, REG.RCTL, REG.TCTL], [0, 8, 0x14, 0xc0, 0xd0, 0xd8, 0x100, 0x400]);
  assert.equal([REG.MTA, REG.RAL, REG.RAH], [0x5200, 0x5400, 0x5404]);
  for (const s of Object.values(STAT)) assert.ok(s >= STAT_FIRST && s <= STAT_LAST, 'statistics inside their block');
  for (const [lo, hi] of STAT64) assert.is(STAT[hi] - STAT[lo], 4, `${lo}/${hi} are a low/high pair`);
  assert.is(new Set(STAT32).size, STAT32.length);
});

test('bit fields: single bits where the datasheet has them, bit 31 kept unsigned', () => {
  assert.is(CTRL.RST, 1 << 26);
  assert.is(CTRL.SLU, 1 << 6);
  assert.is(STATUS.LU, 2);
  assert.equal([RCTL.EN, RCTL.UPE, RCTL.MPE, RCTL.BAM, RCTL.SECRC], [1 << 1, 1 << 3, 1 << 4, 1 << 15, 1 << 26]);
  assert.equal([ICR.TXDW, ICR.LSC, ICR.RXO, ICR.RXT0], [1, 4, 0x40, 0x80]);
  assert.is(RAH.AV, 0x80000000);
  assert.ok(RAH.AV > 0 && ICR.INT_ASSERTED > 0 && CTRL.PHY_RST > 0, 'bit-31 constants are positive numbers');
  assert.equal([EERD.START, EERD.DONE, EERD.ADDR_SHIFT, EERD.DATA_SHIFT], [1, 2, 2, 16]);
});

test('RCTL buffer sizes (§10.2.5.1) and STATUS speeds (§10.2.2.2)', () => {
  assert.is(rctlBufferSize(0), 2048);
  assert.is(rctlBufferSize(1 << 16), 1024);
  assert.is(rctlBufferSize(2 << 16), 512);
  assert.is(rctlBufferSize(3 << 16), 256);
  assert.is(rctlBufferSize((1 << 16) | RCTL.BSEX), 16384);
  assert.is(rctlBufferSize((3 << 16) | RCTL.BSEX), 4096);
  assert.is(rctlBufferSize(RCTL.BSEX), 0, 'BSIZE 00b with BSEX is reserved');
  assert.is(statusSpeed(0), 10);
  assert.is(statusSpeed(1 << 6), 100);
  assert.is(statusSpeed(2 << 6), 1000);
  assert.is(statusSpeed(3 << 6), 1000);
});

test('PacketBatch: push to capacity, shift keeps order, bad capacity rejected', () => {
  const b = new PacketBatch(4);
  for (let i = 0; i < 4; i++) assert.ok(b.push(10 + i, 100 + i));
  assert.not.ok(b.push(99, 99), 'full');
  b.shift(3);
  assert.is(b.count, 1);
  assert.is(b.buf[0], 13);
  assert.is(b.len[0], 103);
  b.shift(5);
  assert.is(b.count, 0);
  assert.throws(() => new PacketBatch(0), /capacity/);
});

test.run();
