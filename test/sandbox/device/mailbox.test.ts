/**
 * The register mailbox's manager side on its own: entries applied in ring order, reads answered
 * after the writes before them, every bad entry answered with a status (never thrown), an
 * impossible tail a violation. The container side spins, so it is exercised by the process
 * tests (supervisor.test.ts); here the ring is filled by hand.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { HostMailbox, type MailboxTarget } from '../../../sandbox/device/mailbox.js';
import { MAILBOX_BYTES, MailboxOp, MailboxStatus, RING_OFFSET, SPACE_CONFIG, W, initMailbox, word0 } from '../../../sandbox/abi/mailbox.js';
import { createShared } from '../../../sandbox/abi/shm.js';

const sys = defaultSys();

function target(log: string[]): MailboxTarget {
  const regs = new Uint32Array(1024);
  return {
    barSize: (i) => (i === 0 ? 4096 : 0),
    barRead32: (_i, off) => {
      log.push(`r ${off}`);
      return regs[off / 4]!;
    },
    barWrite32: (_i, off, v) => {
      log.push(`w ${off}=${v}`);
      regs[off / 4] = v;
    },
    cfgRead: (off, w) => {
      log.push(`cfg r${w} ${off}`);
      return 0x1b36;
    },
    cfgWrite: (off, w, v) => {
      log.push(`cfg w${w} ${off}=${v}`);
    },
    irqEnable: (_k, n) => {
      if (n > 2) throw new Error('too many');
      return n;
    },
    irqDisable: () => {},
    reset: () => {
      log.push('flr');
    },
  };
}

function setup() {
  const shm = createShared(sys, 'mailbox-test', MAILBOX_BYTES);
  initMailbox(shm.u32);
  const kick = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const log: string[] = [];
  const violations: string[] = [];
  const host = new HostMailbox(sys, shm, kick, target(log), (r) => violations.push(r));
  let tail = 0;
  const ring = new Uint32Array(shm.bytes.buffer, RING_OFFSET, 256 * 4);
  const post = (w0: number, off: number, v: number) => {
    ring.set([w0, off, v, 0], (tail % 256) * 4);
    tail++;
    Atomics.store(shm.u32, W.REQ_TAIL, tail);
    return tail;
  };
  return {
    shm,
    host,
    log,
    violations,
    post,
    close: () => {
      host.close();
      shm.close();
      sys.close(kick);
    },
  };
}

test('writes then a read, in order; the read sees the write', () => {
  const m = setup();
  m.post(word0(MailboxOp.WRITE, 4, 0), 0x14, 0x460001);
  const seq = m.post(word0(MailboxOp.READ, 4, 0), 0x14, 0);
  m.host.drain();
  assert.equal(m.log, ['w 20=4587521', 'r 20']);
  assert.is(m.shm.u32[W.RESP_SEQ], seq);
  assert.is(m.shm.u32[W.RESP_VALUE], 0x460001);
  assert.is(m.shm.u32[W.RESP_STATUS], MailboxStatus.OK);
  assert.is(m.shm.u32[W.REQ_HEAD], 2);
  m.close();
});

test('bad entries are answered with a status, never applied', () => {
  const m = setup();
  const cases: [number, number, number, MailboxStatus][] = [
    [word0(MailboxOp.READ, 4, 1), 0, 0, MailboxStatus.BAD_ACCESS], // BAR 1 does not exist
    [word0(MailboxOp.READ, 4, 9), 0, 0, MailboxStatus.BAD_ACCESS], // no BAR 9
    [word0(MailboxOp.READ, 4, 0), 4094, 0, MailboxStatus.BAD_ACCESS], // misaligned
    [word0(MailboxOp.READ, 4, 0), 4096, 0, MailboxStatus.BAD_ACCESS], // past the end
    [word0(MailboxOp.READ, 2, SPACE_CONFIG), 3, 0, MailboxStatus.BAD_ACCESS], // misaligned config
    [word0(MailboxOp.READ, 4, SPACE_CONFIG), 4094, 0, MailboxStatus.BAD_ACCESS],
    [0xee, 0, 0, MailboxStatus.BAD_OP],
    [word0(MailboxOp.IRQ_ENABLE, 0, 0), 1, 5, MailboxStatus.DENIED], // more vectors than granted
    [word0(MailboxOp.IRQ_ENABLE, 0, 0), 7, 1, MailboxStatus.BAD_ACCESS], // unknown kind
  ];
  for (const [w0, off, v, status] of cases) {
    const seq = m.post(w0, off, v);
    m.host.drain();
    assert.is(m.shm.u32[W.RESP_SEQ], seq);
    assert.is(m.shm.u32[W.RESP_STATUS], status, `entry 0x${w0.toString(16)} at ${off}`);
  }
  m.post(word0(MailboxOp.WRITE, 4, 0), 4096, 1); // a bad posted write: counted, not applied
  m.host.drain();
  assert.equal(m.log, []);
  assert.is(m.host.refused, cases.length + 1);
  assert.equal(m.violations, []);
  m.close();
});

test('a tail beyond the ring is a violation and the mailbox stops', () => {
  const m = setup();
  Atomics.store(m.shm.u32, W.REQ_TAIL, 5000);
  m.host.drain();
  assert.equal(m.violations, ['register ring tail 5000 is 5000 entries ahead of head 0 (the ring holds 256)']);
  assert.is(m.shm.u32[W.HOST_GONE], 1, 'a spinning container sees the manager gone');
  assert.is(m.host.drain(), 0, 'nothing is applied after the violation');
  assert.equal(m.log, []);
  m.close();
});

test.run();
