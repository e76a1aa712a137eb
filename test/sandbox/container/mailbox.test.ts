/**
 * The register mailbox's container side (sandbox/container/mailbox.ts) against the real manager
 * side in a worker thread (the container spins synchronously on each answer, so the host cannot
 * share its thread): BAR and config accesses through the ring, interrupt set-up and reset, a
 * refused request turned into ERR_MAILBOX_ACCESS with the reason, and every wait bounded: a
 * manager that let go (HOST_GONE) and one that stopped answering both end in ERR_MAILBOX_TIMEOUT,
 * also while the ring is full.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Worker } from 'node:worker_threads';
import { once } from 'node:events';
import { defaultSys, EFD_CLOEXEC, EFD_NONBLOCK } from 'linux-sys';
import { GuestMailbox, MailboxBar, MailboxConfig } from '../../../sandbox/container/mailbox.js';
import { IRQ_KIND_CODE, MAILBOX_BYTES, initMailbox } from '../../../sandbox/abi/mailbox.js';
import { createShared, type Shared } from '../../../sandbox/abi/shm.js';

const sys = defaultSys();

interface Rig {
  shm: Shared;
  kick: number;
  control: Int32Array;
  worker: Worker | undefined;
  /** Tell the host to stop (1: stop answering; 2: close the mailbox) and wait for it. */
  stop(how: 1 | 2): Promise<void>;
  close(): Promise<void>;
}

async function rig(withHost = true): Promise<Rig> {
  const shm = createShared(sys, 'guest-mailbox-test', MAILBOX_BYTES);
  initMailbox(shm.u32);
  const kick = sys.eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
  const control = new Int32Array(new SharedArrayBuffer(4));
  let worker: Worker | undefined;
  if (withHost) {
    worker = new Worker(new URL('./fixtures/mailbox-host.js', import.meta.url), { workerData: { fd: shm.fd, bytes: MAILBOX_BYTES, kick, control } });
    const [first] = (await once(worker, 'message')) as [string];
    assert.is(first, 'ready');
  }
  const r: Rig = {
    shm,
    kick,
    control,
    worker,
    async stop(how) {
      if (!r.worker) return;
      const done = once(r.worker, 'message');
      Atomics.store(control, 0, how);
      await done;
      await r.worker.terminate();
      r.worker = undefined;
    },
    async close() {
      await r.stop(1);
      shm.close();
      sys.close(kick);
    },
  };
  return r;
}

test('BAR and config accesses go through the ring and the answers come back in order', async () => {
  const r = await rig();
  try {
    const mb = new GuestMailbox(sys, r.shm, r.kick, { timeoutMs: 5000 });
    const bar = new MailboxBar(mb, 0, 4096);
    bar.write32(0x14, 0x460001);
    assert.is(bar.read32(0x14), 0x460001, 'a read sees the write posted before it');
    bar.write64(0x28, 0x1_2345_6000n);
    assert.is(bar.read64(0x28), 0x1_2345_6000n);
    const cfg = new MailboxConfig(mb);
    assert.is(cfg.read16(0), 0x8086);
    assert.is(cfg.read8(4), 0x78);
    assert.is(cfg.read32(8), 0x12345678);
    cfg.write16(4, 0x0406);
    cfg.write32(0x10, 0xffffffff);
    assert.is(mb.accesses, 11, 'each 32-bit access is one entry, a 64-bit one two');
    assert.ok(mb.kicks + mb.kicksSaved > 0);
  } finally {
    await r.close();
  }
});

test('interrupts and reset: vectors routed, more than granted refused with the reason, reset applied', async () => {
  const r = await rig();
  try {
    const mb = new GuestMailbox(sys, r.shm, r.kick, { timeoutMs: 5000 });
    assert.is(mb.irqEnable(IRQ_KIND_CODE.msix, 2), 2);
    assert.throws(
      () => mb.irqEnable(IRQ_KIND_CODE.msix, 5),
      (e: { code?: string; message: string; fix?: string }) =>
        e.code === 'ERR_MAILBOX_ACCESS' && /denied by the manager/.test(e.message) && /no more interrupt vectors/.test(e.fix ?? ''),
    );
    assert.throws(
      () => mb.irqEnable(7, 1),
      (e: { code?: string; message: string }) => e.code === 'ERR_MAILBOX_ACCESS' && /bad access/.test(e.message),
    );
    mb.irqDisable();
    const bar = new MailboxBar(mb, 0, 4096);
    bar.write32(0, 0xabcd);
    mb.reset();
    assert.is(bar.read32(0), 0, 'the reset cleared the registers');
    assert.throws(
      () => bar.read32(4096),
      (e: { code?: string }) => e.code === 'ERR_MAILBOX_OFFSET',
    );
  } finally {
    await r.close();
  }
});

test('a manager that let go: a read gives up at once with ERR_MAILBOX_TIMEOUT saying so', async () => {
  const r = await rig();
  try {
    await r.stop(2);
    const mb = new GuestMailbox(sys, r.shm, r.kick, { timeoutMs: 60_000 });
    const t0 = performance.now();
    assert.throws(
      () => new MailboxBar(mb, 0, 4096).read32(0),
      (e: { code?: string; message: string }) => e.code === 'ERR_MAILBOX_TIMEOUT' && /released the device/.test(e.message),
    );
    assert.ok(performance.now() - t0 < 5000, 'not the 60 s limit');
  } finally {
    await r.close();
  }
});

test('a manager that does not answer: reads time out within the limit, and so does posting into a full ring', async () => {
  const r = await rig(false);
  try {
    const mb = new GuestMailbox(sys, r.shm, r.kick, { timeoutMs: 50 });
    const t0 = performance.now();
    assert.throws(
      () => mb.read(0, 4, 0),
      (e: { code?: string; message: string }) => e.code === 'ERR_MAILBOX_TIMEOUT' && /within 50 ms/.test(e.message),
    );
    const waited = performance.now() - t0;
    assert.ok(waited >= 45 && waited < 3000, `${waited} ms`);
    assert.throws(
      () => {
        for (let i = 0; i < 1000; i++) mb.write(0, 4, 0, i);
      },
      (e: { code?: string; message: string }) => e.code === 'ERR_MAILBOX_TIMEOUT' && /register ring full/.test(e.message),
    );
  } finally {
    await r.close();
  }
});

test.run();
