import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { groupDmarFaults, parseDmarLine, parseDmarTrace, sidToBdf } from '../../../appliance/lab/dmar.js';

test('a trace line as QEMU 7.2 writes it with -D (measured in the lab)', () => {
  const f = parseDmarLine('vtd_dmar_fault sid 0x8 fault 6 addr 0x20000000 write 0');
  assert.ok(f);
  assert.is(f!.sid, 8);
  assert.is(f!.bdf, '0000:00:01.0');
  assert.is(f!.reason, 6);
  assert.match(f!.reasonText, /read not permitted/);
  assert.is(f!.addr, 0x20000000n);
  assert.is(f!.write, false);
  assert.is(f!.time, undefined);
});

test('the pid@time: prefix of the log back-end, write faults, 64-bit addresses', () => {
  const f = parseDmarLine('4242@1732800000.123456:vtd_dmar_fault sid 0x110 fault 5 addr 0xfffffffff000 write 1\n');
  assert.ok(f);
  assert.is(f!.bdf, '0000:01:02.0');
  assert.is(f!.write, true);
  assert.is(f!.reason, 5);
  assert.match(f!.reasonText, /write not permitted/);
  assert.is(f!.addr, 0xfffffffff000n);
  assert.is(f!.time, 1732800000.123456);
});

test('other lines are not faults; unknown reasons are named as such', () => {
  assert.is(parseDmarLine('vtd_iommu_translate: detected translation failure (dev=00:01:00, iova=0x7ffdd0c0)'), undefined);
  assert.is(parseDmarLine(''), undefined);
  assert.match(parseDmarLine('vtd_dmar_fault sid 0x8 fault 99 addr 0x0 write 0')!.reasonText, /unknown fault reason 99/);
  const text = 'x\nvtd_dmar_fault sid 0x8 fault 6 addr 0x1000 write 0\nvtd_dmar_fault sid 0x10 fault 5 addr 0x2000 write 1\n';
  assert.equal(
    parseDmarTrace(text).map((f) => [f.bdf, f.addr]),
    [
      ['0000:00:01.0', 0x1000n],
      ['0000:00:02.0', 0x2000n],
    ],
  );
});

test('requester id to bus:device.function', () => {
  assert.is(sidToBdf(0x0008), '0000:00:01.0');
  assert.is(sidToBdf(0x0012), '0000:00:02.2');
  assert.is(sidToBdf(0xffff), '0000:ff:1f.7');
});

test('faults group into runs: one blocked 64-byte fetch (16 reads of 4 bytes) is one run', () => {
  const lines = [];
  for (let i = 0; i < 16; i++) lines.push(`vtd_dmar_fault sid 0x8 fault 6 addr 0x${(0x20000000 + 4 * i).toString(16)} write 0`);
  lines.push('vtd_dmar_fault sid 0x8 fault 5 addr 0x20000040 write 1'); // other direction
  lines.push('vtd_dmar_fault sid 0x10 fault 5 addr 0x20000044 write 1'); // other device
  lines.push('vtd_dmar_fault sid 0x10 fault 5 addr 0x30000000 write 1'); // far away
  lines.push('vtd_dmar_fault sid 0x10 fault 5 addr 0x30000000 write 1'); // the same address again: a new attempt
  const runs = groupDmarFaults(parseDmarTrace(lines.join('\n')));
  assert.equal(
    runs.map((r) => [r.bdf, r.write, r.first, r.last, r.count]),
    [
      ['0000:00:01.0', false, 0x20000000n, 0x2000003cn, 16],
      ['0000:00:01.0', true, 0x20000040n, 0x20000040n, 1],
      ['0000:00:02.0', true, 0x20000044n, 0x20000044n, 1],
      ['0000:00:02.0', true, 0x30000000n, 0x30000000n, 1],
      ['0000:00:02.0', true, 0x30000000n, 0x30000000n, 1],
    ],
  );
  assert.equal(groupDmarFaults([]), []);
});

test.run();
