import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, writeFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { INIT_FAILED_STATUS, LAB_VFIO_IDS, labInitScript } from '../../../appliance/lab/init-script.js';
import { refused } from '../refused.js';

const modules = ['kernel/virt/lib/irqbypass.ko', 'kernel/drivers/vfio/vfio.ko', 'kernel/drivers/vfio/pci/vfio-pci.ko'];
const script = labInitScript({ kver: '6.1.0-56-amd64', modules });

test('the script is valid busybox sh (sh -n)', () => {
  if (!existsSync('/bin/busybox')) throw new Error('/bin/busybox is missing: install busybox-static (npm run setup)');
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-init-'));
  try {
    writeFileSync(join(dir, 'init'), script);
    execFileSync('/bin/busybox', ['sh', '-n', join(dir, 'init')]);
  } finally {
    rmSync(dir, { recursive: true });
  }
});

test('modules are loaded in the order given, from /lib/modules/KVER', () => {
  assert.ok(script.startsWith('#!/bin/busybox sh\n'));
  assert.ok(script.includes('insmod /lib/modules/6.1.0-56-amd64/$1'));
  const at = modules.map((m) => script.indexOf(`load ${m}\n`));
  assert.ok(
    at.every((i) => i > 0),
    'each module is loaded',
  );
  assert.equal(
    [...at].sort((a, b) => a - b),
    at,
    'in order',
  );
});

test('mounts: host root read-only over 9p with the lab options, the run channel, tmpfs where tests write', () => {
  assert.match(script, /mount -t 9p -o ro,trans=virtio,version=9p2000\.L,msize=512000,cache=loose hostroot \/host/);
  assert.match(script, /mount -t 9p -o trans=virtio,version=9p2000\.L,msize=512000 labrun \/labrun/);
  for (const m of [
    'mount --bind /dev /host/dev',
    'mount --bind /proc /host/proc',
    'mount --bind /sys /host/sys',
    'tmpfs /host/tmp',
    'tmpfs /host/run',
    'mount --bind /labrun /host/run/dmabox-lab',
  ])
    assert.ok(script.includes(m), m);
});

test('devices with the lab ids are bound to vfio-pci through driver_override and drivers_probe', () => {
  assert.equal(LAB_VFIO_IDS, ['1b36:0010', '8086:10d3']);
  assert.ok(script.includes('0x1b36:0x0010|0x8086:0x10d3)'));
  assert.ok(script.includes('echo vfio-pci > "$d/driver_override"'));
  assert.ok(script.includes('echo "$bdf" > /sys/bus/pci/drivers_probe'));
  assert.ok(script.includes('labInitScript') === false);
  const custom = labInitScript({ kver: 'k', modules: [], vfioIds: ['8086:10d3'] });
  assert.ok(custom.includes('    0x8086:0x10d3)'));
});

test('the command runs in the host root (moved over / in its own mount namespace); its status goes to the rc file and to port 0xf4', () => {
  assert.ok(
    script.includes(`unshare -m --propagation private sh -c 'cd /host && mount --move . / && exec chroot . /bin/sh /run/dmabox-lab/cmd.sh' < /dev/null`),
  );
  assert.ok(script.includes('echo "$rc" > /labrun/rc'));
  assert.ok(script.includes('dd of=/dev/port bs=1 seek=244 count=1'));
  assert.ok(script.includes(`finish ${INIT_FAILED_STATUS}`));
});

test('the exit byte written to /dev/port is the status, 0 to 255 (octal escape through busybox printf)', () => {
  if (!existsSync('/bin/busybox')) throw new Error('/bin/busybox is missing: install busybox-static (npm run setup)');
  const line = script.split('\n').find((l) => l.includes('dd of=/dev/port'))!;
  const printf = line.slice(0, line.indexOf('|')).trim();
  for (const rc of [0, 1, 3, 125, 255]) {
    const out = execFileSync('/bin/busybox', ['sh', '-c', `rc=${rc}; ${printf}`]);
    assert.equal([...out], [rc], `rc ${rc}`);
  }
});

test("host folders listed in the run channel's keep file are held aside before the tmpfs and bound back after it", () => {
  const hold = script.indexOf('mount --bind "/host$p" /keep/$n');
  const tmpfs = script.indexOf('tmpfs /host/tmp');
  const back = script.indexOf('mount --bind /keep/$n "/host$p"');
  assert.ok(hold > 0 && tmpfs > hold && back > tmpfs, 'hold, then tmpfs, then bind back');
  assert.ok(script.indexOf('< /labrun/keep') > 0);
});

test('bad ids and module paths are refused', () => {
  assert.throws(() => labInitScript({ kver: 'k', modules: [], vfioIds: ['1B36:10'] }), refused('ERR_LAB_OPTIONS', /vendor:device/));
  assert.throws(() => labInitScript({ kver: 'k', modules: ['a b.ko'] }), refused('ERR_LAB_OPTIONS', /cannot quote/));
});

test.run();
