/**
 * The legacy descriptors (spec/e1000e/descriptors.ts) against the datasheet's tables (82574
 * §7.1.4, §7.2.10.1): sizes, member offsets and widths, the status, error and command bits; and
 * the Ethernet constants.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import type { BitField, Member, Struct } from '../../../spec/field.js';
import { DESC_SIZE, RING_ALIGN_DESCS, RXD, RXD_STATUS, RXD_ERRORS, RXD_ERRORS_FRAME, TXD, TXD_CMD, TXD_STA } from '../../../spec/e1000e/descriptors.js';
import { ETH, ETHERTYPE } from '../../../spec/e1000e/ethernet.js';

const META = new Set(['offset', 'width', 'spec', 'size']);

function members(s: Struct): Record<string, [number, number]> {
  const out: Record<string, [number, number]> = {};
  for (const [k, m] of Object.entries(s)) if (!META.has(k)) out[k] = [(m as Member).offset, (m as Member).size];
  return out;
}

function bitsOf(group: object): Record<string, number> {
  const out: Record<string, number> = {};
  for (const [k, f] of Object.entries(group)) if (!META.has(k)) out[k] = (f as BitField).lo;
  return out;
}

function tiles(s: Struct): void {
  const covered = new Uint8Array(s.size);
  for (const [, [off, size]] of Object.entries(members(s))) for (let i = off; i < off + size; i++) covered[i]!++;
  assert.ok(
    covered.every((c) => c === 1),
    'the members cover every byte once',
  );
}

test('legacy RX descriptor (§7.1.4): 16 bytes; address 0, length 8, checksum 10, status 12, errors 13, special 14', () => {
  assert.is(RXD.size, 16);
  assert.equal(members(RXD), { BUFFER_ADDR: [0, 8], LENGTH: [8, 2], CSUM: [10, 2], STATUS: [12, 1], ERRORS: [13, 1], SPECIAL: [14, 2] });
  tiles(RXD);
  assert.match(RXD.spec, /§7\.1\.4/);
});

test("RX STATUS (§7.1.4.1) and ERRORS (§7.1.4.2) bits, at their members' offsets", () => {
  assert.equal(bitsOf(RXD_STATUS), { DD: 0, EOP: 1, IXSM: 2, VP: 3, UDPCS: 4, TCPCS: 5, IPCS: 6, PIF: 7 });
  assert.equal(bitsOf(RXD_ERRORS), { CE: 0, SE: 1, SEQ: 2, CXE: 4, TCPE: 5, IPE: 6, RXE: 7 });
  assert.is(RXD_STATUS.offset, RXD.STATUS.offset);
  assert.is(RXD_ERRORS.offset, RXD.ERRORS.offset);
  assert.equal([RXD_STATUS.DD.mask, RXD_STATUS.EOP.mask], [0x01, 0x02]);
  assert.is(RXD_ERRORS_FRAME, 0x01 | 0x02 | 0x04 | 0x10 | 0x80, 'CE, SE, SEQ, CXE, RXE; not the checksum bits');
});

test('legacy TX descriptor (§7.2.10.1): 16 bytes; address 0, length 8, CSO 10, CMD 11, STA 12, CSS 13, special 14', () => {
  assert.is(TXD.size, 16);
  assert.equal(members(TXD), { BUFFER_ADDR: [0, 8], LENGTH: [8, 2], CSO: [10, 1], CMD: [11, 1], STA: [12, 1], CSS: [13, 1], SPECIAL: [14, 2] });
  tiles(TXD);
});

test('TX CMD (§7.2.10.1.1) and STA (§7.2.10.1.2) bits', () => {
  assert.equal(bitsOf(TXD_CMD), { EOP: 0, IFCS: 1, IC: 2, RS: 3, DEXT: 5, VLE: 6, IDE: 7 });
  assert.equal(bitsOf(TXD_STA), { DD: 0, EC: 1, LC: 2 });
  assert.equal([TXD_CMD.EOP.mask, TXD_CMD.IFCS.mask, TXD_CMD.RS.mask, TXD_CMD.DEXT.mask], [0x01, 0x02, 0x08, 0x20]);
  assert.is(TXD_CMD.offset, TXD.CMD.offset);
  assert.is(TXD_STA.offset, TXD.STA.offset);
});

test('rings: 16-byte descriptors in multiples of 8 (RDLEN/TDLEN count 128-byte units)', () => {
  assert.is(DESC_SIZE, 16);
  assert.is(RING_ALIGN_DESCS, 8);
});

test('Ethernet: header 14, 60 to 1514 bytes without the 4-byte FCS (64 to 1518 on the wire)', () => {
  assert.is(ETH.HEADER, 2 * ETH.ADDR + 2);
  assert.is(ETH.MIN_FRAME + ETH.FCS, 64);
  assert.is(ETH.MAX_FRAME + ETH.FCS, 1518);
  assert.equal([ETHERTYPE.IPV4, ETHERTYPE.ARP], [0x0800, 0x0806]);
});

test.run();
