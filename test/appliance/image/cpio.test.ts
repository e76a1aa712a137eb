import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { S_IFCHR, S_IFDIR, S_IFLNK, S_IFREG, buildCpio, readCpio } from '../../../appliance/image/cpio.js';
import { refused } from '../refused.js';

const entries = [
  { type: 'dir' as const, path: 'bin' },
  { type: 'file' as const, path: 'bin/hello', data: 'hello\n', mode: 0o755 },
  { type: 'file' as const, path: '/odd', data: new Uint8Array([1, 2, 3]) },
  { type: 'symlink' as const, path: 'bin/sh', target: 'busybox' },
  { type: 'dir' as const, path: 'dev' },
  { type: 'chardev' as const, path: 'dev/console', major: 5, minor: 1 },
];

test('newc archive reads back: names, modes, data, device numbers; trailer ends it', () => {
  const a = buildCpio(entries);
  assert.is(a.toString('ascii', 0, 6), '070701');
  assert.is(a.length % 4, 0, 'archive is 4-byte aligned');
  const r = readCpio(a);
  assert.equal(
    r.map((e) => e.name),
    ['bin', 'bin/hello', 'odd', 'bin/sh', 'dev', 'dev/console'],
  );
  assert.is(r[0]!.mode, S_IFDIR | 0o755);
  assert.is(r[1]!.mode, S_IFREG | 0o755);
  assert.is(r[1]!.data.toString(), 'hello\n');
  assert.equal([...r[2]!.data], [1, 2, 3]);
  assert.is(r[3]!.mode, S_IFLNK | 0o777);
  assert.is(r[3]!.data.toString(), 'busybox');
  assert.is(r[5]!.mode, S_IFCHR | 0o600);
  assert.is(r[5]!.rdevMajor, 5);
  assert.is(r[5]!.rdevMinor, 1);
  assert.ok(a.includes(Buffer.from('TRAILER!!!\0')));
});

test('the same entries give the same bytes (the cache key is the content)', () => {
  assert.ok(buildCpio(entries).equals(buildCpio(entries)));
});

test('every entry starts 4-byte aligned whatever the name and data lengths', () => {
  for (let n = 1; n <= 8; n++) {
    const a = buildCpio([
      { type: 'file', path: 'x'.repeat(n), data: 'y'.repeat(n) },
      { type: 'file', path: 'z', data: 'w' },
    ]);
    const r = readCpio(a);
    assert.is(r[1]!.name, 'z', `name length ${n}`);
    assert.is(r[1]!.data.toString(), 'w');
  }
});

test('GNU cpio lists the archive the same way', () => {
  if (!existsSync('/usr/bin/cpio')) throw new Error('cpio is not installed (npm run setup)');
  const listing = execFileSync('cpio', ['-t', '--quiet'], { input: buildCpio(entries) })
    .toString()
    .trim()
    .split('\n');
  assert.equal(listing, ['bin', 'bin/hello', 'odd', 'bin/sh', 'dev', 'dev/console']);
});

test('bad input is refused with ERR_IMAGE_CPIO', () => {
  assert.throws(() => buildCpio([{ type: 'file', path: '/', data: '' }]), refused('ERR_IMAGE_CPIO', /empty path/));
  assert.throws(() => buildCpio([{ type: 'chardev', path: 'dev/x', major: -1, minor: 0 }]), refused('ERR_IMAGE_CPIO', /field -1 does not fit/));
  assert.throws(() => readCpio(Buffer.from('0707019999')), refused('ERR_IMAGE_CPIO', /truncated at byte 0/));
  assert.throws(() => readCpio(Buffer.alloc(120, 0x41)), refused('ERR_IMAGE_CPIO', /bad cpio magic 'AAAAAA' at byte 0/));
});

test.run();
