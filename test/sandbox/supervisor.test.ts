/**
 * The whole cycle on the simulator, with real container processes: up, block I/O through the
 * sandboxed driver, kill -9, quarantine (BME off and FLR before the next container), restart,
 * earlier writes intact, requests in flight replayed, a hang detected, the restart limit, failed.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Supervisor } from '../../sandbox/manager/supervisor.js';
import { kinds, pattern, simPolicy, until } from './helpers.js';

test('up, I/O, kill -9, quarantine before reuse, restart, data intact, replay, hang, limit, failed', async () => {
  const s = new Supervisor(simPolicy('cycle'), { hangMs: 800, heartbeatMs: 200 });
  const fn = s.sim!.fn;
  // Record, at each quarantine event, what the device looked like: BME must be off and an FLR done
  // before the next container exists.
  const atQuarantine: { bme: boolean; resets: number; pid: number | undefined }[] = [];
  s.on('event', (e) => {
    if (e.kind === 'quarantine') {
      atQuarantine.push({ bme: fn.busMasterEnabled, resets: fn.resets, pid: s.pid });
      if (fn.hung) fn.resume();
    }
  });
  try {
    await s.start();
    assert.is(s.state, 'running');
    assert.is(s.block.blockSize, 512);
    assert.is(s.block.blockCount, 8192);
    assert.ok(fn.busMasterEnabled, 'the driver enabled bus mastering through the mailbox');

    // The driver works: writes then reads back through the container.
    const a = pattern(64 * 1024, 1);
    await s.block.write(100, a);
    assert.equal(await s.block.read(100, 128), a);
    await s.block.flush();
    const pid1 = s.pid!;

    // kill -9 while requests are in flight (the device is held so they cannot finish).
    fn.hang();
    const b = pattern(8192, 2);
    const inflight = [s.block.write(1000, b), s.block.read(100, 16)];
    await until('requests to reach the container', () => s.lastHeartbeat !== undefined && s.block.pending === 2 && s.lastHeartbeat.inflight > 0, 10_000);
    process.kill(pid1, 'SIGKILL');
    await s.ready();
    const [, readBack] = await Promise.all(inflight);
    assert.equal(readBack, a.subarray(0, 8192), 'the replayed read returns the earlier write');
    assert.ok(s.block.replayed >= 2, `replayed ${s.block.replayed}`);
    assert.is.not(s.pid, pid1);
    assert.is(atQuarantine.length, 1);
    assert.is(atQuarantine[0]!.bme, false, 'BME off at quarantine');
    assert.ok(atQuarantine[0]!.resets >= 1, 'FLR at quarantine');
    assert.is(atQuarantine[0]!.pid, undefined, 'no container while quarantined');
    assert.equal(await s.block.read(1000, 16), b, 'the replayed write landed');
    assert.equal(await s.block.read(100, 128), a, 'earlier writes intact after the restart');
    assert.is(s.restarts, 1);
    const k = kinds(s);
    const exitAt = k.indexOf('exit'), qAt = k.indexOf('quarantine'), spawn2 = k.indexOf('spawn', exitAt);
    assert.ok(exitAt >= 0 && exitAt < qAt && qAt < spawn2, `order: ${k.join(' ')}`);

    // A hang: the device stops, a request is pending, no progress: killed and restarted.
    fn.hang();
    const pendingRead = s.block.read(100, 8);
    await until('the hang to be detected', () => s.events.some((e) => e.kind === 'hang'), 15_000);
    assert.equal(await pendingRead, a.subarray(0, 4096));
    assert.is(s.restarts, 2);

    // The restart limit (2 in 60 s): the next death marks the device failed.
    await s.ready();
    const failed = new Promise((r) => s.once('failed', r));
    fn.hang();
    const doomed = s.block.read(0, 1);
    process.kill(s.pid!, 'SIGKILL');
    await failed;
    assert.is(s.state, 'failed');
    try {
      await doomed;
      assert.unreachable('a request pending at failure must reject');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_SANDBOX_FAILED');
    }
    try {
      await s.block.read(0, 1);
      assert.unreachable('requests after failure must reject');
    } catch (e) {
      assert.is((e as { code?: string }).code, 'ERR_SANDBOX_FAILED');
    }
    assert.is(fn.busMasterEnabled, false);
  } finally {
    await s.stop();
  }
  assert.is(s.state, 'stopped');
  assert.equal(s.device.quarantineLog.slice(-3), ['bme-off', 'flr', 'unmap']);
});

test('MSI-X: vectors routed through IRQ_SETUP and the mailbox to inherited eventfds; I/O completes by interrupt, again after a restart', async () => {
  const policy = simPolicy('msix');
  policy.driver.interrupts = 'msix';
  const s = new Supervisor(policy);
  try {
    await s.start();
    const fn = s.sim!.fn;
    const before = fn.msix!.delivered;
    const d = pattern(32 * 1024, 9);
    await s.block.write(7, d);
    assert.equal(await s.block.read(7, 64), d);
    assert.ok(s.events.some((e) => e.text.includes(', msix, ')), 'the driver runs in MSI-X mode');
    assert.ok((fn.msix!.delivered) > before, 'interrupts were delivered');
    process.kill(s.pid!, 'SIGKILL');
    await until('the restart', () => s.restarts === 1 && s.state === 'running', 20_000);
    assert.equal(await s.block.read(7, 64), d);
  } finally {
    await s.stop();
  }
});

test.run();
