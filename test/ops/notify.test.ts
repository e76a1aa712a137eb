/** sd_notify through the syscall seam: messages to a socket this test binds, the environment's checks, the watchdog. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { defaultSys } from 'linux-sys';
import { Notifier } from '../../ops/notify.js';
import { OpsError } from '../../ops/errors.js';
import { until } from '../sandbox/helpers.js';
import { NotifyListener } from './helpers.js';

test('to an abstract name: READY with STATUS, STATUS on one line, RELOADING with MONOTONIC_USEC, STOPPING', async () => {
  const l = new NotifyListener(`@dmabox-notify-unit-${process.pid}`);
  const n = Notifier.fromEnv({ NOTIFY_SOCKET: l.name })!;
  try {
    assert.is(n.watchdogMs, undefined);
    assert.ok(n.ready('a running\nb starting'));
    assert.ok(n.status('x'));
    assert.ok(n.reloading());
    assert.ok(n.stopping());
    await until('4 messages', () => (l.drain(), l.messages.length === 4), 2000);
    assert.is(l.messages[0], 'READY=1\nSTATUS=a running b starting');
    assert.is(l.messages[1], 'STATUS=x');
    assert.match(l.messages[2]!, /^RELOADING=1\nMONOTONIC_USEC=\d+$/);
    assert.is(l.messages[3], 'STOPPING=1');
  } finally {
    n.close();
    l.close();
  }
  assert.not.ok(n.send('READY=1'), 'closed: nothing sent');
});

test('to a path; the service manager gone: counted, not thrown', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-notify-'));
  const l = new NotifyListener(join(dir, 'notify'));
  const n = Notifier.fromEnv({ NOTIFY_SOCKET: join(dir, 'notify') })!;
  try {
    assert.ok(n.ready());
    l.drain();
    assert.equal(l.messages, ['READY=1']);
    l.close();
    rmSync(join(dir, 'notify'));
    assert.not.ok(n.status('nobody listens'));
    assert.is(n.failures, 1);
  } finally {
    n.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('a re-executed service manager (a new socket at the same path) still gets the messages; so does one that came late', () => {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-notify-'));
  const path = join(dir, 'notify');
  const late = Notifier.fromEnv({ NOTIFY_SOCKET: path })!; // nobody there yet: not connected
  let l = new NotifyListener(path);
  const n = Notifier.fromEnv({ NOTIFY_SOCKET: path })!;
  try {
    assert.ok(n.status('one'));
    assert.ok(late.status('late'));
    l.drain();
    assert.equal(l.messages, ['STATUS=one', 'STATUS=late']);
    l.close();
    rmSync(path);
    l = new NotifyListener(path);
    assert.ok(n.status('two'), 'the old connection fails, the path works');
    l.drain();
    assert.equal(l.messages, ['STATUS=two']);
    assert.is(n.failures, 0);
  } finally {
    n.close();
    late.close();
    l.close();
    rmSync(dir, { recursive: true, force: true });
  }
});

test('the watchdog: WATCHDOG=1 every WATCHDOG_USEC/2 while alive() says so, nothing when it does not', async () => {
  const l = new NotifyListener(`@dmabox-notify-wd-${process.pid}`);
  const n = Notifier.fromEnv({ NOTIFY_SOCKET: l.name, WATCHDOG_USEC: '40000', WATCHDOG_PID: String(process.pid) })!;
  let alive = true;
  try {
    assert.is(n.watchdogMs, 20);
    n.startWatchdog(() => alive);
    n.startWatchdog(() => true); // once only
    await until('3 pings', () => (l.drain(), l.messages.filter((m) => m === 'WATCHDOG=1').length >= 3), 3000);
    alive = false;
    await new Promise((r) => setTimeout(r, 60));
    l.drain();
    const count = l.messages.length;
    await new Promise((r) => setTimeout(r, 100));
    l.drain();
    assert.is(l.messages.length, count, 'no WATCHDOG=1 while the manager is not alive');
  } finally {
    n.close();
    l.close();
  }
});

test('the environment: no NOTIFY_SOCKET, none; a watchdog for another pid is not ours; malformed values refused', () => {
  assert.is(Notifier.fromEnv({}), undefined);
  const other = Notifier.fromEnv({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '1000000', WATCHDOG_PID: '1' }, defaultSys(), 2)!;
  assert.is(other.watchdogMs, undefined);
  other.close();
  const bad = (env: NodeJS.ProcessEnv, re: RegExp): void =>
    assert.throws(
      () => Notifier.fromEnv(env),
      (e: unknown) => e instanceof OpsError && e.code === 'ERR_OPS_NOTIFY' && re.test(e.message),
    );
  bad({ NOTIFY_SOCKET: 'vsock:2:1234' }, /neither a path nor an abstract name/);
  bad({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: 'soon' }, /WATCHDOG_USEC=soon/);
  bad({ NOTIFY_SOCKET: '@x', WATCHDOG_USEC: '0' }, /positive/);
});

test.run();
