/** The declaration style of spec/: fields, registers, structures, and their checks. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { bit, bits, bytes, getField, getField64, isSet, reg16, reg32, reg64, setField, setField64, struct, u16, u32, u64, u8 } from '../../spec/field.js';

test('bits(hi, lo) is inclusive, as specifications write it; bit(n) is one bit', () => {
  const f = bits(10, 7);
  assert.equal({ lo: f.lo, bits: f.bits, mask: f.mask, max: f.max }, { lo: 7, bits: 4, mask: 0x780, max: 15 });
  assert.equal(bit(31).mask, 0x8000_0000);
  assert.is(bits(31, 0).max, 0xffff_ffff);
  assert.is(bits(31, 0).mask, 0xffff_ffff);
  assert.is(bits(35, 32).mask, 0, 'a field above bit 31 has no 32-bit mask');
  assert.is(bit(3, '§x').spec, '§x');
});

test('getField / setField / isSet on 32-bit values; setField refuses a value that does not fit', () => {
  const f = bits(10, 7);
  assert.is(getField(0xffff_ffff, f), 15);
  assert.is(setField(0, f, 5), 5 << 7);
  assert.is(setField(0xffff_ffff, f, 0), (0xffff_ffff & ~0x780) >>> 0);
  assert.is(setField(0, bit(31), 1), 0x8000_0000);
  assert.throws(() => setField(0, f, 16), /does not fit/);
  assert.throws(() => setField(0, f, -1), /does not fit/);
  assert.ok(isSet(0x40, bit(6)));
  assert.not.ok(isSet(0x40, bit(5)));
});

test('64-bit fields through bigint', () => {
  const f = bits(35, 32);
  assert.is(getField64(0x0000_000f_0000_0000n, f), 15);
  assert.is(setField64(0n, f, 3), 0x3_0000_0000n);
  assert.throws(() => setField64(0n, f, 16), /does not fit/);
});

test('registers carry offset, width and section; fields must fit; bad offsets are refused', () => {
  const CC = reg32(0x14, 'NVMe 1.4 §3.1.5', { EN: bit(0), MPS: bits(10, 7) });
  assert.equal([CC.offset, CC.width, CC.spec, CC.EN.lo, CC.MPS.bits], [0x14, 32, 'NVMe 1.4 §3.1.5', 0, 4]);
  assert.ok(Object.isFrozen(CC));
  assert.throws(() => reg16(0x10, 'x', { TOO_HIGH: bit(16) }), /does not fit a 16-bit register/);
  assert.throws(() => reg32(0x12, 'x'), /naturally aligned/);
  assert.throws(() => reg32(0x10, 'x', { offset: bit(0) }), /reserved/);
  assert.is(reg64(0, 'cap', { DSTRD: bits(35, 32) }).DSTRD.lo, 32);
});

test('structures: members inside and not overlapping', () => {
  const RXD = struct(16, 'desc', { ADDR: u64(0), LEN: u16(8), CSUM: u16(10), STA: u8(12), ERR: u8(13), SPECIAL: u16(14) });
  assert.equal([RXD.size, RXD.LEN.offset, RXD.LEN.size], [16, 8, 2]);
  assert.throws(() => struct(8, 'x', { A: u64(4) }), /outside/);
  assert.throws(() => struct(8, 'x', { A: u32(0), B: u16(2) }), /overlaps/);
  assert.is(struct(64, 'x', { NAME: bytes(4, 20) }).NAME.size, 20);
});

test.run();
