/**
 * The appliance spec's checks, the pieces of the build that are pure (ldd's output, merged /usr
 * paths, lock comparison, stage 1's script) and the machine's disks and port forwarding.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { compareInputs, type LockedInputs } from '../../../appliance/build/build.js';
import { imagePath, parseLdd } from '../../../appliance/build/rootfs.js';
import { parseApplianceSpec } from '../../../appliance/build/spec.js';
import { APPLIANCE_SYSCTLS, stage1Script } from '../../../appliance/build/stage1.js';
import { ApplianceError } from '../../../appliance/image/errors.js';
import { qemuArgs } from '../../../appliance/lab/machine.js';

function problems(text: string): string {
  try {
    parseApplianceSpec(text, '/x/a.yaml');
  } catch (e) {
    assert.instance(e, ApplianceError);
    assert.is((e as ApplianceError).code, 'ERR_APPLIANCE_SPEC');
    return (e as Error).message;
  }
  assert.unreachable('accepted');
  return '';
}

test('spec: a good one resolves policy and file paths beside it', () => {
  const s = parseApplianceSpec(
    'version: 1\nname: box\npolicies: [a.yaml, sub/b.yaml]\nonFatal: halt\nkernelArgs: [no_timer_check]\nfiles:\n  - { path: /etc/dmabox/k.psk, from: keys/k.psk, mode: "0600" }\n',
    '/x/a.yaml',
  );
  assert.equal(s.policies, ['/x/a.yaml', '/x/sub/b.yaml']);
  assert.is(s.onFatal, 'halt');
  assert.is(s.allowUnconfinedDma, false);
  assert.equal(s.files, [{ path: '/etc/dmabox/k.psk', from: '/x/keys/k.psk', mode: 0o600 }]);
});

test('spec: every problem at once, each with its line', () => {
  const m = problems(
    'version: 2\nname: Bad Name\npolicies: []\nonFatal: explode\nkernelArgs: ["a b"]\ncolour: red\nfiles:\n  - { path: /etc/passwd, from: x }\n',
  );
  for (const want of [
    '/x/a.yaml:1: version: expected one of 1, got 2',
    "/x/a.yaml:2: name: expected a name of lower-case letters, digits and dashes (at most 63), e.g. storage, got 'Bad Name'",
    '/x/a.yaml:3: policies: expected at least 1 entry, got 0',
    "/x/a.yaml:4: onFatal: expected 'reboot' or 'halt', got 'explode'",
    "/x/a.yaml:5: kernelArgs[0]: expected one word of letters, digits and _.,:=/+- (no spaces or quotes), got 'a b'",
    '/x/a.yaml:6: colour: unknown field',
    "/x/a.yaml:8: files[0].path: expected a file directly under /etc/dmabox/ (what a policy can name), got '/etc/passwd'",
  ])
    assert.ok(m.includes(want), `${want}\nin:\n${m}`);
});

test('spec: a misspelt field is named with its likely meaning; YAML errors and an empty file point at their line', () => {
  assert.match(problems('version: 1\nname: box\npolicies: [a.yaml]\nonFatl: halt\n'), "/x/a.yaml:4: onFatl: unknown field; did you mean 'onFatal'?");
  assert.match(problems('version: 1\nname: [\n'), '/x/a.yaml:3: YAML: Flow sequence');
  assert.match(problems(''), '/x/a.yaml:1: empty');
  assert.match(
    problems('version: 1\nname: box\npolicies: [a.yaml]\nfiles:\n  - { path: /etc/dmabox/k, from: k, mode: 999 }\n'),
    '/x/a.yaml:5: files[0].mode: expected an octal mode in quotes',
  );
});

test('ldd output: libraries and the loader, vdso skipped, a missing library refused', () => {
  const out = `\tlinux-vdso.so.1 (0x00007ffd)\n\tlibdl.so.2 => /lib/x86_64-linux-gnu/libdl.so.2 (0x00007f)\n\t/lib64/ld-linux-x86-64.so.2 (0x00007f)\n`;
  assert.equal(parseLdd(out), ['/lib/x86_64-linux-gnu/libdl.so.2', '/lib64/ld-linux-x86-64.so.2']);
  assert.throws(() => parseLdd('\tlibgone.so.1 => not found\n', '/usr/bin/x'), /needs libgone\.so\.1/);
  assert.is(imagePath('/lib/x86_64-linux-gnu/libc.so.6'), 'usr/lib/x86_64-linux-gnu/libc.so.6');
  assert.is(imagePath('/usr/bin/node'), 'usr/bin/node');
  assert.is(imagePath('/lib64/ld-linux-x86-64.so.2'), 'usr/lib64/ld-linux-x86-64.so.2');
});

test('lock: each changed, new and dropped input is named', () => {
  const a: LockedInputs = {
    kernel: { package: 'linux-image-6.1.0-57-amd64', version: '6.1.192-3', sha256: 'a'.repeat(64) },
    debian: [
      { package: 'libc6', version: '2.36-9', sha256: 'b'.repeat(64) },
      { package: 'gone', version: '1', sha256: null },
    ],
    npm: [{ name: 'yaml', version: '2.9.1', integrity: 'sha512-x' }],
  };
  assert.equal(compareInputs(a, a), []);
  const b: LockedInputs = {
    kernel: { ...a.kernel, version: '6.1.200-1' },
    debian: [
      { package: 'libc6', version: '2.36-10', sha256: 'c'.repeat(64) },
      { package: 'new', version: '2', sha256: null },
    ],
    npm: [{ name: 'yaml', version: '2.9.2', integrity: 'sha512-y' }],
  };
  const d = compareInputs(a, b);
  assert.ok(
    d.some((l) => l.startsWith('kernel package: linux-image-6.1.0-57-amd64 6.1.192-3')),
    d.join('\n'),
  );
  assert.ok(
    d.some((l) => l.startsWith('debian libc6: 2.36-9 (sha256 bbbbbbbbbbbb) locked, 2.36-10')),
    d.join('\n'),
  );
  assert.ok(d.includes('debian gone: 1 is locked, but the build no longer uses it'), d.join('\n'));
  assert.ok(d.includes('debian new: 2 is new (not in the lock)'), d.join('\n'));
  assert.ok(
    d.some((l) => l.startsWith('npm yaml: 2.9.1 sha512-x locked, 2.9.2 sha512-y now')),
    d.join('\n'),
  );
});

test('stage 1: verity before mount, every block read, sysctls with module loading off last, PID 1 the manager', () => {
  const text = stage1Script({
    kver: '6.1.0-57-amd64',
    modules: ['kernel/drivers/md/dm-verity.ko'],
    onFatal: 'halt',
    init: ['/usr/bin/node', '/opt/dmabox/dist/cli/main.js', 'appliance', 'init'],
  });
  const at = (s: string): number => text.indexOf(s);
  assert.ok(at('veritysetup open') > 0 && at('veritysetup open') < at('dd if=/dev/mapper/dmabox-root') && at('dd if=') < at('mount -t squashfs'));
  assert.ok(text.includes('poweroff -f'), 'halt powers off');
  assert.ok(at('kernel/modules_disabled') > at('kernel/kexec_load_disabled'));
  assert.is(APPLIANCE_SYSCTLS.at(-1)![0], 'kernel/modules_disabled');
  assert.ok(text.trimEnd().endsWith('exec switch_root /newroot /usr/bin/node /opt/dmabox/dist/cli/main.js appliance init'));
  assert.throws(() => stage1Script({ kver: 'x', modules: ['a b'], onFatal: 'reboot', init: ['x'] }), /cannot quote/);
});

test('machine: the image as a read-only virtio disk, its own command line, the NBD port forwarded', () => {
  const args = qemuArgs({
    kernel: 'k',
    initrd: 'i',
    cmdline: 'console=ttyS0 dmabox.roothash=ab',
    accel: 'tcg',
    memMiB: 1024,
    cpus: 2,
    nvme: [],
    e1000e: [{ net: 'slirp', mac: '52:54:00:12:34:56', hostForward: [{ hostPort: 2000, guestAddress: '10.0.2.15', guestPort: 10809 }] }],
    shares: [],
    disks: [{ image: '/a/root.img' }],
  }).join(' ');
  assert.ok(args.includes('user,id=net0,hostfwd=tcp:127.0.0.1:2000-10.0.2.15:10809'), args);
  assert.ok(args.includes('if=none,id=disk0,file=/a/root.img,format=raw,readonly=on'), args);
  assert.ok(args.endsWith('-append console=ttyS0 dmabox.roothash=ab'), args);
});

test.run();
