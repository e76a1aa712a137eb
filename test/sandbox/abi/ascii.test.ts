/**
 * The ABI's NUL-padded ASCII names (sandbox/abi/ascii.ts), and the three headers that read one: the
 * code image's driver name, HELLO's (test/sandbox/hypercall/hostile.test.ts) and PREPARE's profile
 * (test/sandbox/spare.test.ts).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { paddedAscii } from '../../../sandbox/abi/ascii.js';
import { CODE_HEADER_BYTES, decodeCodeHeader, encodeCode } from '../../../sandbox/abi/code.js';

const field = (...bytes: number[]): Uint8Array => Uint8Array.from([...bytes, ...new Array<number>(8 - bytes.length).fill(0)]);

test('a padded name: its characters up to the NULs; all NULs is empty; unprintable, or anything after the padding, is undefined', () => {
  assert.is(paddedAscii(field(0x6e, 0x76, 0x6d, 0x65)), 'nvme');
  assert.is(paddedAscii(Uint8Array.from([0x61, 0x62])), 'ab', 'a full field has no padding');
  assert.is(paddedAscii(field()), '');
  assert.is(paddedAscii(field(0x61, 0x20, 0x62)), 'a b', 'a space is printable by default');
  assert.is(paddedAscii(field(0x61, 0x20, 0x62), 0x21), undefined, 'unless the field starts printable at 0x21');
  assert.is(paddedAscii(field(0x61, 0x01)), undefined);
  assert.is(paddedAscii(field(0x61, 0x7f)), undefined);
  assert.is(paddedAscii(field(0x61, 0, 0x62)), undefined, 'a character after the padding began');
});

test("the code image's header name read through it: refused when unprintable or broken by a NUL, as before", () => {
  const img = encodeCode({ name: 'drv', files: [{ path: 'a.js', source: '' }], entry: 0 });
  const head = img.slice(0, CODE_HEADER_BYTES);
  assert.is(decodeCodeHeader(head).name, 'drv');
  const unprintable = head.slice();
  unprintable[17] = 0x01;
  assert.throws(() => decodeCodeHeader(unprintable), /not printable ASCII, NUL-padded/);
  const gap = head.slice();
  gap[20] = 0x41; // after the NUL at 19
  assert.throws(() => decodeCodeHeader(gap), /not printable ASCII, NUL-padded/);
  const empty = head.slice();
  empty.fill(0, 16, 32);
  assert.throws(() => decodeCodeHeader(empty), /driver name is empty/);
});

test.run();
