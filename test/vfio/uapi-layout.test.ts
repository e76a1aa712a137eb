/**
 * Every ioctl number, constant, struct size and field offset vfio-bindings uses, checked against
 * the machine's <linux/vfio.h> (and the seam's own constants, seccomp's syscall number, struct
 * sock_fprog and the errno table against libc's and the kernel's headers): a C probe generated
 * from our tables is compiled with gcc and run.
 * A name we use that the header lacks fails the compile, and so the test. Without gcc or the
 * header the test FAILS (it never skips): the numbers would be unchecked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { _IO, IOCTL, LAYOUT, VFIO, VFIO_BASE, VFIO_TYPE } from 'vfio-bindings';
import * as ls from 'linux-sys';
import { ERRNO, SOCK_FPROG, SYS_SECCOMP } from 'linux-sys';

const INSTALL = 'install them: apt-get install gcc linux-libc-dev';

/** The seam's constants (linux-sys), by their C names. */
const SEAM_CONSTANTS = [
  'O_RDONLY',
  'O_RDWR',
  'O_CLOEXEC',
  'PROT_READ',
  'PROT_WRITE',
  'MAP_SHARED',
  'MAP_PRIVATE',
  'MAP_ANONYMOUS',
  'MAP_FIXED',
  'MAP_NORESERVE',
  'MFD_CLOEXEC',
  'EFD_CLOEXEC',
  'EFD_NONBLOCK',
  'PR_SET_NO_NEW_PRIVS',
  'PR_GET_NO_NEW_PRIVS',
  'SECCOMP_SET_MODE_FILTER',
  'SECCOMP_FILTER_FLAG_TSYNC',
  'RLIMIT_MEMLOCK',
] as const;

function probeSource(): string {
  const lines: string[] = [];
  const emit = (key: string, expr: string): void => {
    lines.push(`  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`);
  };
  emit('VFIO_TYPE', 'VFIO_TYPE');
  emit('VFIO_BASE', 'VFIO_BASE');
  for (const name of Object.keys(IOCTL)) emit(name, name);
  for (const name of Object.keys(VFIO)) emit(name, name);
  for (const [struct, l] of Object.entries(LAYOUT)) {
    emit(`sizeof(${struct})`, `sizeof(struct ${struct})`);
    for (const field of Object.keys(l.fields)) emit(`offsetof(${struct}.${field})`, `offsetof(struct ${struct}, ${field})`);
  }
  // The seam's own constants, against libc's and the kernel's headers.
  for (const name of SEAM_CONSTANTS) emit(name, name);
  emit('SYS_seccomp', 'SYS_seccomp');
  emit('sizeof(sock_fprog)', 'sizeof(struct sock_fprog)');
  emit('offsetof(sock_fprog.len)', 'offsetof(struct sock_fprog, len)');
  emit('offsetof(sock_fprog.filter)', 'offsetof(struct sock_fprog, filter)');
  emit('sizeof(sock_filter)', 'sizeof(struct sock_filter)');
  for (const name of Object.keys(ERRNO)) emit(name, name);
  const includes = [
    'stdio.h',
    'stddef.h',
    'errno.h',
    'fcntl.h',
    'sys/mman.h',
    'sys/eventfd.h',
    'sys/prctl.h',
    'sys/resource.h',
    'sys/syscall.h',
    'linux/filter.h',
    'linux/seccomp.h',
    'linux/vfio.h',
  ];
  return ['#define _GNU_SOURCE', ...includes.map((h) => `#include <${h}>`), 'int main(void) {', ...lines, '  return 0;', '}', ''].join('\n');
}

function runProbe(): Map<string, bigint> {
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`gcc is not on this machine, so the VFIO numbers cannot be checked against <linux/vfio.h>: ${INSTALL}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'vfio-uapi-'));
  try {
    const src = join(dir, 'probe.c');
    const bin = join(dir, 'probe');
    writeFileSync(src, probeSource());
    try {
      execFileSync('gcc', ['-std=gnu11', '-Wall', '-o', bin, src], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      const stderr = String((e as { stderr?: Buffer }).stderr ?? '');
      if (/linux\/vfio\.h: No such file/.test(stderr)) throw new Error(`<linux/vfio.h> is missing: ${INSTALL}`, { cause: e });
      throw new Error(`the probe did not compile: a name vfio-bindings uses is not in <linux/vfio.h>, or differs:\n${stderr}`, { cause: e });
    }
    const out = execFileSync(bin, { encoding: 'utf8' });
    const m = new Map<string, bigint>();
    for (const line of out.trim().split('\n')) {
      const [k, v] = line.split(' ');
      m.set(k!, BigInt(v!));
    }
    return m;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const header = runProbe();

function check(key: string, ours: number): void {
  const theirs = header.get(key);
  assert.ok(theirs !== undefined, `${key}: not printed by the probe`);
  assert.is(BigInt(ours), theirs, `${key}: ours ${ours}, header ${theirs}`);
}

test('_IO and the VFIO type and base match the header', () => {
  check('VFIO_TYPE', VFIO_TYPE);
  check('VFIO_BASE', VFIO_BASE);
  assert.is(_IO(0x3b, 100), 0x3b64);
});

test('every ioctl number matches', () => {
  for (const [name, value] of Object.entries(IOCTL)) check(name, value);
  assert.ok(Object.keys(IOCTL).length >= 15);
});

test('every constant matches', () => {
  for (const [name, value] of Object.entries(VFIO)) check(name, value);
});

test('every struct size and field offset matches', () => {
  let n = 0;
  for (const [struct, l] of Object.entries(LAYOUT)) {
    check(`sizeof(${struct})`, l.size);
    for (const [field, off] of Object.entries(l.fields)) {
      check(`offsetof(${struct}.${field})`, off as number);
      n++;
    }
  }
  assert.ok(n > 40, `only ${n} fields checked`);
});

test("the seam's constants, seccomp's syscall number, struct sock_fprog, and every errno name match libc and the kernel", () => {
  for (const name of SEAM_CONSTANTS) check(name, (ls as unknown as Record<string, number>)[name]!);
  check('SYS_seccomp', SYS_SECCOMP[process.arch]!);
  check('sizeof(sock_fprog)', SOCK_FPROG.size);
  check('offsetof(sock_fprog.len)', SOCK_FPROG.len);
  check('offsetof(sock_fprog.filter)', SOCK_FPROG.filter);
  check('sizeof(sock_filter)', SOCK_FPROG.filterSize);
  for (const [name, n] of Object.entries(ERRNO)) check(name, n);
});

test.run();
