import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HcStatus, LogLevel, ShutdownReason, type HypercallError, type LogRecord } from '../../../sandbox/abi/hypercall/index.js';
import { HostEndpoint } from '../../../sandbox/manager/hypercall/host.js';
import { FakeTimers } from '../../helpers/fake-timers.js';

// The guest runs in a child process over its stdin/stdout pipes, as a driver container would.
// The child imports the same build this test runs from (sources under tsx, or dist).
const ext = import.meta.url.endsWith('.ts') ? 'ts' : 'js';
const guestModule = fileURLToPath(new URL(`../../../sandbox/container/hypercall/guest.${ext}`, import.meta.url));
const abiModule = fileURLToPath(new URL(`../../../sandbox/abi/hypercall/index.${ext}`, import.meta.url));
const GUEST = `
import { Duplex } from 'node:stream';
const { GuestEndpoint } = await import(${JSON.stringify(guestModule)});
const { LogLevel } = await import(${JSON.stringify(abiModule)});
const stream = Duplex.from({ readable: process.stdin, writable: process.stdout });
let completed = 0n;
const guest = new GuestEndpoint(stream, {
  name: 'child-driver',
  handler: {
    shutdown: () => { setTimeout(() => process.exit(0), 10); },
    quiesce: () => 0,
  },
});
const s = await guest.hello();
const w = await guest.mapWindow(0);
guest.log(LogLevel.INFO, 'mapped ' + w.length + ' bytes at iova 0x' + w.iova.toString(16) + ', heartbeat ' + s.heartbeatMs + ' ms');
guest.startHeartbeats(() => ({ completed: ++completed, errors: 0n, bytes: completed * 4096n, inflight: 0 }));
guest.ready(1);
`;

/** `event`, or a failure naming `what` when it has not come within `ms` of real time (a bound, not a wait). */
function within<T>(event: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  const bound = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new Error(`${what}: not within ${ms} ms`)), ms);
  });
  return Promise.race([event, bound]).finally(() => clearTimeout(timer));
}

test('a guest in a child process, over pipes: hello, map, log, heartbeats, ready, shutdown', async () => {
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', GUEST], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  const logs: LogRecord[] = [];
  const violations: HypercallError[] = [];
  let beats = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => {
    ready = r;
  });
  let threeBeats!: () => void;
  const hadThreeBeats = new Promise<void>((r) => {
    threeBeats = r;
  });
  // The host's bounds (HELLO, heartbeat watchdog) on fake time: a slow child start on a loaded
  // machine cannot trip them; the child keeps its own real-time heartbeats.
  const timers = new FakeTimers();
  const host = new HostEndpoint(stream, {
    windowCount: 1,
    heartbeatMs: 50,
    timers,
    handler: {
      mapWindow: () => ({ iova: 0x100000n, length: 0x200000n, offset: 0n, fdSlot: 3, deviceRead: true, deviceWrite: true, hugePages: false }),
      irqSetup: () => HcStatus.DENIED,
      log: (r) => logs.push(r),
      heartbeat: () => {
        if (++beats === 3) threeBeats();
      },
      ready: () => ready(),
    },
    onViolation: (e) => violations.push(e),
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await within(isReady, 60_000, 'READY from the child');
  await within(hadThreeBeats, 60_000, 'three heartbeats from the child (one every 25 ms)');
  assert.equal(logs, [{ level: LogLevel.INFO, text: 'mapped 2097152 bytes at iova 0x100000, heartbeat 50 ms' }]);
  assert.is(host.peer?.name, 'child-driver');
  assert.is(host.peer?.pid, child.pid);
  await within(host.shutdown(2000, ShutdownReason.STOP), 60_000, 'the answer to SHUTDOWN');
  assert.is(await within(exited, 60_000, "the child's exit"), 0);
  assert.equal(
    violations.filter((v) => v.code !== 'ERR_HC_CLOSED'),
    [],
  );
  host.close();
});

test.run();
