/**
 * The namespace store's address range reserved by a spare device process (sandbox/device/store-reservation.ts):
 * the size its launch names is read strictly, and the memfd mapped over the reservation shows the
 * media through the view made before, shared both ways with another mapping of the same memfd.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, MAP_SHARED, MFD_CLOEXEC, PROT_READ, PROT_WRITE } from 'linux-sys';
import { SPARE_STORE_ENV } from '../../../sandbox/abi/handover.js';
import { mapOverReservation, MAX_RESERVED, reservedSizeFromEnv, reserveStore } from '../../../sandbox/device/store-reservation.js';

const sys = defaultSys();
const MiB = 1 << 20;

test('the size a spare is launched with: a page multiple within bounds, nothing else', () => {
  assert.is(reservedSizeFromEnv({ [SPARE_STORE_ENV]: String(64 * MiB) }), 64 * MiB);
  assert.is(reservedSizeFromEnv({ [SPARE_STORE_ENV]: String(MAX_RESERVED) }), MAX_RESERVED);
  assert.is(reservedSizeFromEnv({}), undefined);
  for (const bad of ['', '0', '-4096', '4097', '0x1000', '1e6', ' 4096', String(MAX_RESERVED + 4096), '99999999999999999999'])
    assert.is(reservedSizeFromEnv({ [SPARE_STORE_ENV]: bad }), undefined, bad);
});

test('the store memfd mapped over the reservation: the view made before shows the media, shared both ways', () => {
  const size = 2 * MiB;
  const fd = sys.memfdCreate('dmabox-test:store', MFD_CLOEXEC);
  try {
    sys.ftruncate(fd, size);
    const other = new Uint8Array(sys.view(sys.mmap(0n, size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0n), size));
    for (let i = 0; i < size; i += 4096) other[i] = (i >> 12) & 0xff;
    reserveStore(sys, size);
    assert.throws(() => reserveStore(sys, size), /reserved already/);
    assert.is(mapOverReservation(sys, fd, size + 4096), undefined, 'another size maps as usual; the reservation stays');
    const over = mapOverReservation(sys, fd, size)!;
    assert.ok(over !== undefined);
    assert.is(over.bytes.length, size);
    for (let i = 0; i < size; i += 4096) assert.is(over.bytes[i], (i >> 12) & 0xff, `byte ${i}`);
    over.bytes[size - 1] = 0xa5;
    assert.is(other[size - 1], 0xa5, 'a write through the reserved view reaches the memfd');
    assert.is(mapOverReservation(sys, fd, size), undefined, 'used once');
  } finally {
    sys.close(fd);
  }
});

test.run();
