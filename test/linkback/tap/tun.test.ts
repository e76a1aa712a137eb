/**
 * TapDevice: name and MAC checks, the errno -> error mapping a user sees, the ifreq it hands the
 * kernel (through a fake seam), and, as root, the real thing: a name template, the MAC set and read
 * back, EBUSY and EINVAL from the kernel, persistence, carrier, and frames read (an ARP request the
 * namespace's stack sends) and written (the ARP reply, after which the echo request follows).
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { readdirSync } from 'node:fs';
import { TapDevice, checkMac, checkTapName, formatMac, tapOpenError, type TapSys } from '../../../linkback/tap/tun.js';
import { TapError } from '../../../linkback/tap/errors.js';
import { IFREQ, TUN_IOCTL } from '../../../linkback/tap/uapi.js';
import { NetnsLab, rootTestsBlocked } from './netns.js';
import { until } from './fakes.js';

const isCode =
  (code: string) =>
  (e: unknown): boolean =>
    e instanceof TapError && e.code === code;

test('interface names: 1 to 15 safe characters, at most one %d', () => {
  for (const ok of ['dmabox0', 'dmabox%d', 'a.b-c_d', 'x', 'abcdefghijklmno']) assert.is(checkTapName(ok), ok);
  for (const bad of ['', 'abcdefghijklmnop', 'a b', 'a/b', '.', '..', 'x%s', '%d%d', 'tap:0']) {
    assert.throws(() => checkTapName(bad), isCode('ERR_TAP_ARG'), bad);
  }
  assert.throws(() => checkTapName(7), /is not valid/);
  assert.throws(() => checkTapName('a b'), /fix: use 1 to 15 characters/);
});

test('MAC addresses: 6 bytes, unicast, not zero', () => {
  assert.equal(checkMac([0x52, 0x54, 0, 1, 2, 3]), Uint8Array.from([0x52, 0x54, 0, 1, 2, 3]));
  assert.is(formatMac(Uint8Array.from([0x52, 0x54, 0, 0xa, 0xbc, 3])), '52:54:00:0a:bc:03');
  for (const bad of [
    [1, 2, 3, 4, 5, 6],
    [0, 0, 0, 0, 0, 0],
    [2, 0, 0, 0, 0],
    [2, 0, 0, 0, 0, 256],
    [2, 0, 0, 0, 0, 1.5],
  ]) {
    assert.throws(() => checkMac(bad), isCode('ERR_TAP_ARG'), JSON.stringify(bad));
  }
});

test('errno mapping: each failure says what to do', () => {
  const cases: Array<[Parameters<typeof tapOpenError>[0], string, string, RegExp]> = [
    ['open', 'ENOENT', 'ERR_TAP_NO_TUN', /modprobe tun/],
    ['open', 'ENODEV', 'ERR_TAP_NO_TUN', /modprobe tun/],
    ['open', 'EACCES', 'ERR_TAP_PERMISSION', /root or give the process CAP_NET_ADMIN/],
    ['TUNSETIFF', 'EPERM', 'ERR_TAP_PERMISSION', /CAP_NET_ADMIN/],
    ['TUNSETIFF', 'EBUSY', 'ERR_TAP_BUSY', /another process has it open/],
    ['TUNSETIFF', 'EINVAL', 'ERR_TAP_NAME_TAKEN', /ip link del tap9/],
    ['SIOCSIFHWADDR', 'EBUSY', 'ERR_TAP_BUSY', /set it down first/],
    ['TUNSETPERSIST', 'EFAULT', 'ERR_TAP_IO', /TUNSETPERSIST tap9 failed \(EFAULT\)/],
  ];
  for (const [op, errno, code, text] of cases) {
    const e = tapOpenError(op, errno, 'tap9');
    assert.is(e.code, code, `${op} ${errno}`);
    assert.is(e.errno, errno);
    assert.match(e.message, text);
  }
});

test('no /dev/net/tun: ERR_TAP_NO_TUN', () => {
  assert.throws(() => TapDevice.open({ name: 'tap0', path: '/nonexistent/dmabox/tun' }), isCode('ERR_TAP_NO_TUN'));
});

/** A seam that records ioctls and answers as the test says; the fd is /dev/null's. */
function fakeSys(answer: (request: number, arg: Uint8Array | number | undefined) => void): {
  sys: TapSys;
  calls: Array<{ request: number; arg: Uint8Array | number | undefined }>;
} {
  const calls: Array<{ request: number; arg: Uint8Array | number | undefined }> = [];
  return {
    calls,
    sys: {
      ioctl(_fd, request, arg) {
        calls.push({ request, arg: arg instanceof Uint8Array ? arg.slice() : arg });
        answer(request, arg);
        return 0;
      },
      poll() {
        throw new Error('not used');
      },
    },
  };
}

function openFds(): number {
  return readdirSync('/proc/self/fd').length;
}

test("TUNSETIFF gets the name and IFF_TAP | IFF_NO_PI; the kernel's name is read back; MAC and persist follow", () => {
  const { sys, calls } = fakeSys((request, arg) => {
    if (request === TUN_IOCTL.TUNSETIFF && arg instanceof Uint8Array) arg.set(Buffer.from('fake7\0\0\0', 'ascii'), 0);
  });
  const tap = TapDevice.open({ name: 'fake%d', path: '/dev/null', sys, mac: [0x52, 0x54, 0, 9, 8, 7], persist: false });
  try {
    assert.is(tap.name, 'fake7');
    assert.equal(Array.from(tap.mac), [0x52, 0x54, 0, 9, 8, 7]);
    assert.equal(
      calls.map((c) => c.request),
      [TUN_IOCTL.TUNSETIFF, TUN_IOCTL.TUNSETPERSIST, TUN_IOCTL.SIOCSIFHWADDR],
    );
    const ifr = calls[0]!.arg as Uint8Array;
    assert.is(ifr.length, IFREQ.size);
    assert.is(Buffer.from(ifr.subarray(0, 7)).toString('ascii'), 'fake%d\0');
    assert.is(ifr[16]! | (ifr[17]! << 8), 0x1002);
    assert.is(calls[1]!.arg, 0);
    const hw = calls[2]!.arg as Uint8Array;
    assert.is(Buffer.from(hw.subarray(0, 5)).toString('ascii'), 'fake7');
    assert.is(hw[16]! | (hw[17]! << 8), 1, 'ARPHRD_ETHER');
    assert.equal(Array.from(hw.subarray(18, 24)), [0x52, 0x54, 0, 9, 8, 7]);
  } finally {
    tap.close();
  }
  assert.throws(() => tap.read(new Uint8Array(64), 0, 64), isCode('ERR_TAP_CLOSED'));
  tap.close(); // idempotent
});

test('a refused TUNSETIFF closes the fd and says why (EPERM, EBUSY)', () => {
  for (const [errnoName, code] of [
    ['EPERM', 'ERR_TAP_PERMISSION'],
    ['EBUSY', 'ERR_TAP_BUSY'],
  ] as const) {
    const before = openFds();
    const { sys } = fakeSys(() => {
      throw Object.assign(new Error('ioctl failed'), { errnoName });
    });
    assert.throws(() => TapDevice.open({ name: 'tap0', path: '/dev/null', sys }), isCode(code));
    assert.is(openFds(), before, 'no fd leaked');
  }
});

const blocked = rootTestsBlocked();
const rootTest = blocked === null ? test : test.skip;
if (blocked !== null) console.log(`linkback/tap/tun.test: root tests SKIPPED, ${blocked}`);

function linkShow(name: string): string {
  return execFileSync('ip', ['-o', 'link', 'show', name], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'pipe'] });
}

function exists(name: string): boolean {
  try {
    linkShow(name);
    return true;
  } catch {
    return false;
  }
}

rootTest('as root: a real TAP with a numbered name and our MAC; EBUSY and EINVAL from the kernel; gone after close', () => {
  const tap = TapDevice.open({ name: 'dmbxu%d', mac: [0x52, 0x54, 0x00, 0x77, 0x00, 0x01] });
  try {
    assert.match(tap.name, /^dmbxu\d+$/);
    assert.match(linkShow(tap.name), /link\/ether 52:54:00:77:00:01/);
    assert.throws(() => TapDevice.open({ name: tap.name }), isCode('ERR_TAP_BUSY'));
    assert.throws(() => TapDevice.open({ name: 'lo' }), isCode('ERR_TAP_NAME_TAKEN'));
    assert.is(tap.read(new Uint8Array(2048), 0, 2048), 0, 'nothing waiting on a down interface');
    tap.setCarrier(false);
    execFileSync('ip', ['link', 'set', tap.name, 'up']);
    assert.match(linkShow(tap.name), /NO-CARRIER/);
    tap.setCarrier(true);
    assert.not.match(linkShow(tap.name), /NO-CARRIER/);
    execFileSync('ip', ['link', 'set', tap.name, 'down']);
  } finally {
    tap.close();
  }
  assert.not.ok(exists(tap.name), 'a non-persistent TAP goes with its fd');
});

rootTest('as root: persist keeps the interface after close; persist false on reopen removes it at close', () => {
  const first = TapDevice.open({ name: 'dmbxp%d', persist: true });
  const name = first.name;
  try {
    first.close();
    assert.ok(exists(name), 'persistent interface survives its fd');
    const again = TapDevice.open({ name, persist: false });
    again.close();
    assert.not.ok(exists(name), 'persistence cleared, gone with the fd');
  } finally {
    if (exists(name)) execFileSync('ip', ['link', 'del', name]);
  }
});

/** An ARP reply from `mac`/`ip` to the asker of `request` (a 42-byte ARP request frame). */
function arpReply(request: Uint8Array, mac: number[], ip: number[]): Uint8Array {
  const r = new Uint8Array(60);
  r.set(request.subarray(6, 12), 0); // to the asker
  r.set(mac, 6);
  r.set([0x08, 0x06, 0, 1, 0x08, 0x00, 6, 4, 0, 2], 12); // ARP, Ethernet/IPv4, reply
  r.set(mac, 22);
  r.set(ip, 28);
  r.set(request.subarray(22, 32), 32); // target = the asker's MAC and IP
  return r;
}

rootTest('as root: frames read and written: the namespace ARPs, we answer, its echo request follows', async () => {
  const lab = NetnsLab.create(1);
  const ns = lab.names[0]!;
  const tap = TapDevice.open({ name: 'dmbxr%d', mac: [0x52, 0x54, 0x00, 0x77, 0x00, 0x02] });
  const frames: Uint8Array[] = [];
  const buf = new Uint8Array(2048);
  try {
    lab.attach(ns, tap.name, '10.77.1.1/24');
    tap.watch(() => {
      let n: number;
      while ((n = tap.read(buf, 0, buf.length)) > 0) frames.push(buf.slice(0, n));
    });
    const ping = lab.run(ns, ['ping', '-c', '1', '-W', '1', '10.77.1.2'], 10_000);
    await until(() => frames.some((f) => f[12] === 0x08 && f[13] === 0x06), 'an ARP request', 3000);
    const req = frames.find((f) => f[12] === 0x08 && f[13] === 0x06)!;
    assert.equal(Array.from(req.subarray(0, 6)), [0xff, 0xff, 0xff, 0xff, 0xff, 0xff]);
    assert.equal(Array.from(req.subarray(6, 12)), [0x52, 0x54, 0x00, 0x77, 0x00, 0x02], 'sent from the MAC we set');
    assert.equal(Array.from(req.subarray(38, 42)), [10, 77, 1, 2], 'asking for 10.77.1.2');
    assert.ok(tap.write(arpReply(req, [0x52, 0x54, 0x00, 0x77, 0x00, 0x99], [10, 77, 1, 2]), 0, 60), tap.lastError);
    await until(() => frames.some((f) => f[12] === 0x08 && f[13] === 0x00 && f[23] === 1), 'the ICMP echo request', 3000);
    const echo = frames.find((f) => f[12] === 0x08 && f[13] === 0x00)!;
    assert.equal(Array.from(echo.subarray(0, 6)), [0x52, 0x54, 0x00, 0x77, 0x00, 0x99], 'to the MAC our reply gave');
    tap.unwatch();
    await ping; // no reply comes: ping exits non-zero within its -W bound
  } finally {
    tap.close();
    lab.cleanup();
  }
});

test.run();
