/**
 * The TAP numbers (linkback/tap/uapi.ts) against the machine's headers: a C probe printing each
 * from <linux/if_tun.h>, <net/if.h> (struct ifreq), <linux/sockios.h> and <linux/if_arp.h> is
 * compiled with gcc and run. Without gcc or the headers the test FAILS, never skips: the numbers
 * would be unchecked.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import {
  _IOW,
  AF_INET,
  ARPHRD_ETHER,
  IFF_UP,
  IFNAMSIZ,
  IFR_ADDR,
  IFREQ,
  INET_IOCTL,
  RTENTRY,
  RTF_GATEWAY,
  RTF_UP,
  SOCKADDR_IN,
  TUN_FLAGS,
  TUN_IOCTL,
} from '../../../linkback/tap/uapi.js';

const INSTALL = 'install them: apt-get install gcc linux-libc-dev libc6-dev';

function probe(): Map<string, bigint> {
  const lines: string[] = [];
  const emit = (key: string, expr: string): void => {
    lines.push(`  printf("%s %llu\\n", "${key}", (unsigned long long)(${expr}));`);
  };
  for (const name of Object.keys(TUN_IOCTL)) emit(name, name);
  for (const name of Object.keys(TUN_FLAGS)) emit(name, name);
  emit('IFNAMSIZ', 'IFNAMSIZ');
  emit('ARPHRD_ETHER', 'ARPHRD_ETHER');
  emit('sizeof(ifreq)', 'sizeof(struct ifreq)');
  emit('ifr_name', 'offsetof(struct ifreq, ifr_name)');
  emit('ifr_flags', 'offsetof(struct ifreq, ifr_flags)');
  emit('ifr_hwaddr', 'offsetof(struct ifreq, ifr_hwaddr)');
  emit('sa_data', 'offsetof(struct ifreq, ifr_hwaddr) + offsetof(struct sockaddr, sa_data)');
  emit('sizeof(ifr_flags)', 'sizeof(((struct ifreq *)0)->ifr_flags)');
  for (const name of Object.keys(INET_IOCTL)) emit(name, name);
  emit('IFF_UP', 'IFF_UP');
  emit('RTF_UP', 'RTF_UP');
  emit('RTF_GATEWAY', 'RTF_GATEWAY');
  emit('AF_INET', 'AF_INET');
  emit('ifr_addr', 'offsetof(struct ifreq, ifr_addr)');
  emit('ifr_netmask', 'offsetof(struct ifreq, ifr_netmask)');
  emit('sizeof(sockaddr_in)', 'sizeof(struct sockaddr_in)');
  emit('sin_family', 'offsetof(struct sockaddr_in, sin_family)');
  emit('sin_port', 'offsetof(struct sockaddr_in, sin_port)');
  emit('sin_addr', 'offsetof(struct sockaddr_in, sin_addr)');
  emit('sizeof(rtentry)', 'sizeof(struct rtentry)');
  emit('rt_dst', 'offsetof(struct rtentry, rt_dst)');
  emit('rt_gateway', 'offsetof(struct rtentry, rt_gateway)');
  emit('rt_genmask', 'offsetof(struct rtentry, rt_genmask)');
  emit('rt_flags', 'offsetof(struct rtentry, rt_flags)');
  emit('rt_dev', 'offsetof(struct rtentry, rt_dev)');
  const src = [
    '#include <stdio.h>',
    '#include <stddef.h>',
    '#include <sys/ioctl.h>',
    '#include <sys/socket.h>',
    '#include <net/if.h>',
    '#include <linux/if_tun.h>',
    '#include <linux/sockios.h>',
    '#include <linux/if_arp.h>',
    '#include <netinet/in.h>',
    '#include <net/route.h>',
    'int main(void) {',
    ...lines,
    '  return 0;',
    '}',
    '',
  ].join('\n');
  try {
    execFileSync('gcc', ['--version'], { stdio: 'ignore' });
  } catch {
    throw new Error(`gcc is not on this machine, so the TAP numbers cannot be checked against <linux/if_tun.h>: ${INSTALL}`);
  }
  const dir = mkdtempSync(join(tmpdir(), 'tap-uapi-'));
  try {
    writeFileSync(join(dir, 'probe.c'), src);
    try {
      execFileSync('gcc', ['-std=gnu11', '-Wall', '-o', join(dir, 'probe'), join(dir, 'probe.c')], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (e) {
      throw new Error(`the TAP probe did not compile (${INSTALL}):\n${String((e as { stderr?: Buffer }).stderr ?? e)}`, { cause: e });
    }
    const m = new Map<string, bigint>();
    for (const line of execFileSync(join(dir, 'probe'), { encoding: 'utf8' }).trim().split('\n')) {
      const [k, v] = line.split(' ');
      m.set(k!, BigInt(v!));
    }
    return m;
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

const header = probe();

function check(key: string, ours: number): void {
  const theirs = header.get(key);
  assert.ok(theirs !== undefined, `${key}: not printed by the probe`);
  assert.is(BigInt(ours), theirs, `${key}: ours ${ours}, header ${theirs}`);
}

test("TUNSETIFF is _IOW('T', 202, int) = 0x400454ca, and every ioctl number matches the header", () => {
  assert.is(TUN_IOCTL.TUNSETIFF, 0x400454ca);
  assert.is(_IOW('T', 202, 4), 0x400454ca);
  for (const [name, value] of Object.entries(TUN_IOCTL)) check(name, value);
});

test('IFF_TAP, IFF_NO_PI, IFNAMSIZ and ARPHRD_ETHER match', () => {
  for (const [name, value] of Object.entries(TUN_FLAGS)) check(name, value);
  check('IFNAMSIZ', IFNAMSIZ);
  check('ARPHRD_ETHER', ARPHRD_ETHER);
});

test('struct ifreq: 40 bytes, name @0, flags (a short) @16, hwaddr @16 with sa_data @18', () => {
  check('sizeof(ifreq)', IFREQ.size);
  check('ifr_name', IFREQ.ifr_name);
  check('ifr_flags', IFREQ.ifr_flags);
  check('ifr_hwaddr', IFREQ.ifr_hwaddr);
  check('sa_data', IFREQ.sa_data);
  check('sizeof(ifr_flags)', 2);
  assert.is(IFREQ.size, 40);
});

test('interface address and route numbers (SIOCSIFADDR, SIOCADDRT, sockaddr_in, rtentry) match the headers', () => {
  for (const [name, v] of Object.entries(INET_IOCTL)) check(name, v);
  check('IFF_UP', IFF_UP);
  check('RTF_UP', RTF_UP);
  check('RTF_GATEWAY', RTF_GATEWAY);
  check('AF_INET', AF_INET);
  check('ifr_addr', IFR_ADDR);
  check('ifr_netmask', IFR_ADDR);
  check('sizeof(sockaddr_in)', SOCKADDR_IN.size);
  check('sin_family', SOCKADDR_IN.sin_family);
  check('sin_port', SOCKADDR_IN.sin_port);
  check('sin_addr', SOCKADDR_IN.sin_addr);
  check('sizeof(rtentry)', RTENTRY.size);
  for (const k of ['rt_dst', 'rt_gateway', 'rt_genmask', 'rt_flags', 'rt_dev'] as const) check(k, RTENTRY[k]);
});

test.run();
