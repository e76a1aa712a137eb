import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Mmio, SEGMENT_BYTES, VfioCode, VfioError } from 'vfio-bindings';

function bounds(fn: () => unknown): void {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    assert.is((e as VfioError).code, VfioCode.MMIO_BOUNDS, (e as Error).message);
    return;
  }
  assert.unreachable('expected ERR_MMIO_BOUNDS');
}

test('read32/write32 over plain memory, little-endian, full 32-bit values', () => {
  const mem = new ArrayBuffer(64);
  const m = new Mmio(64, mem);
  m.write32(8, 0xdeadbeef);
  assert.is(new DataView(mem).getUint32(8, true), 0xdeadbeef);
  assert.is(m.read32(8), 0xdeadbeef);
  m.write32(60, -1);
  assert.is(m.read32(60), 0xffffffff);
  assert.is(m.size, 64);
});

test('64-bit: low dword at offset, high at offset + 4', () => {
  const mem = new ArrayBuffer(16);
  const m = new Mmio(16, mem);
  m.write64(8, 0x0011223344556677n);
  const v = new DataView(mem);
  assert.is(v.getUint32(8, true), 0x44556677);
  assert.is(v.getUint32(12, true), 0x00112233);
  assert.is(m.read64(8), 0x0011223344556677n);
});

test('64-bit access order is low then high (seen through a recording fallback)', () => {
  const log: string[] = [];
  const m = new Mmio(16, [], {
    fallback: {
      read32: (o) => (log.push(`r${o}`), o === 0 ? 1 : 2),
      write32: (o, v) => void log.push(`w${o}=${v}`),
    },
  });
  assert.is(m.read64(0), (2n << 32n) | 1n);
  m.write64(8, 0x500000006n);
  assert.equal(log, ['r0', 'r4', 'w8=6', 'w12=5']);
});

test('every access is bounds-checked and 4-byte aligned: ERR_MMIO_BOUNDS', () => {
  const m = new Mmio(16, new ArrayBuffer(16));
  bounds(() => m.read32(16));
  bounds(() => m.read32(-4));
  bounds(() => m.read32(2));
  bounds(() => m.read32(4.5));
  bounds(() => m.read32(NaN));
  bounds(() => m.write32(13, 0));
  bounds(() => m.write32(2 ** 31, 0));
  bounds(() => m.read64(12));
  bounds(() => m.write64(10, 0n));
  const e = (() => {
    try {
      m.read32(20);
    } catch (err) {
      return err as VfioError;
    }
    return undefined;
  })();
  assert.match(e!.message, /offset 20 is outside the register space of 16 bytes/);
});

test('segments: a space in pieces (as above 4 GiB), accesses reach each piece; a hole without fallback is out of bounds', () => {
  const a = new ArrayBuffer(16);
  const b = new ArrayBuffer(16);
  const m = new Mmio(48, [
    { offset: 32, bytes: b },
    { offset: 0, bytes: a },
  ]);
  m.write32(4, 1);
  m.write32(36, 2);
  assert.is(new DataView(a).getUint32(4, true), 1);
  assert.is(new DataView(b).getUint32(4, true), 2);
  assert.is(m.read32(36), 2);
  bounds(() => m.read32(20));
});

test('construction refuses bad sizes, misaligned or overlapping or oversized segments', () => {
  const bad = (fn: () => unknown): void => {
    try {
      fn();
    } catch (e) {
      assert.is((e as VfioError).code, VfioCode.ARG);
      return;
    }
    assert.unreachable('expected ERR_VFIO_ARG');
  };
  bad(() => new Mmio(0, new ArrayBuffer(4)));
  bad(() => new Mmio(6, new ArrayBuffer(8)));
  bad(() => new Mmio(16, [{ offset: 2, bytes: new ArrayBuffer(4) }]));
  bad(() => new Mmio(16, [{ offset: 0, bytes: new ArrayBuffer(32) }]));
  bad(
    () =>
      new Mmio(16, [
        { offset: 0, bytes: new ArrayBuffer(8) },
        { offset: 4, bytes: new ArrayBuffer(8) },
      ]),
  );
  assert.is(SEGMENT_BYTES, 2 ** 30);
});

test('close drops the views before the memory goes; accesses then throw ERR_VFIO_CLOSED; close twice is safe', () => {
  let unmapped = 0;
  const m = new Mmio(8, new ArrayBuffer(8), { onClose: () => unmapped++ });
  m.close();
  m.close();
  assert.is(unmapped, 1);
  assert.ok(m.isClosed);
  for (const f of [() => m.read32(0), () => m.write32(0, 1), () => m.read64(0)]) {
    try {
      f();
      assert.unreachable('expected ERR_VFIO_CLOSED');
    } catch (e) {
      assert.is((e as VfioError).code, VfioCode.CLOSED);
    }
  }
});

test.run();
