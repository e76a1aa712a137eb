/** The packet rings' layout: offsets, alignment, no overlap, geometry checks, entry packing. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { HEADER_BYTES, N, NET_BATCH, NET_SLOT_BYTES, entry, netLayout } from '../../../sandbox/abi/net.js';

test('header words are distinct and inside the header', () => {
  const words = Object.values(N);
  assert.is(new Set(words).size, words.length);
  for (const w of words) assert.ok(w >= 0 && w * 4 < HEADER_BYTES, `word ${w}`);
});

test('rings and slot areas follow each other without overlap; slot areas page aligned', () => {
  for (const g of [
    { txSlots: 32, rxSlots: 32 },
    { txSlots: 256, rxSlots: 512 },
    { txSlots: 4096, rxSlots: 4096 },
  ]) {
    const L = netLayout(g);
    assert.is(L.txs, HEADER_BYTES);
    assert.is(L.txc, L.txs + 4 * g.txSlots);
    assert.is(L.rxf, L.txc + 4 * g.txSlots);
    assert.is(L.rxc, L.rxf + 4 * g.rxSlots);
    assert.ok(L.txArea >= L.rxc + 4 * g.rxSlots);
    assert.is(L.txArea % 4096, 0);
    assert.is(L.rxArea, L.txArea + g.txSlots * NET_SLOT_BYTES);
    assert.ok(L.bytes >= L.rxArea + g.rxSlots * NET_SLOT_BYTES);
    assert.is(L.bytes % 4096, 0);
  }
});

test('geometry outside [batch, 4096] or not an integer is refused', () => {
  for (const bad of [NET_BATCH - 1, 4097, 100.5, -1, Number.NaN]) {
    assert.throws(() => netLayout({ txSlots: bad, rxSlots: 64 }), /txSlots/);
    assert.throws(() => netLayout({ txSlots: 64, rxSlots: bad }), /rxSlots/);
  }
});

test('entries pack slot and length into 32 bits', () => {
  const e = entry(4095, 1514);
  assert.is(e & 0xffff, 4095);
  assert.is(e >>> 16, 1514);
  assert.ok(e >= 0 && e <= 0xffffffff);
});

test.run();
