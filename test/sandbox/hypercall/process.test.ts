import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { spawn } from 'node:child_process';
import { Duplex } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { HcStatus, LogLevel, ShutdownReason, type HypercallError, type LogRecord } from '../../../sandbox/abi/hypercall/index.js';
import { HostEndpoint } from '../../../sandbox/manager/hypercall/host.js';

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

test('a guest in a child process, over pipes: hello, map, log, heartbeats, ready, shutdown', async () => {
  const child = spawn(process.execPath, [...process.execArgv, '--input-type=module', '-e', GUEST], { stdio: ['pipe', 'pipe', 'inherit'] });
  const stream = Duplex.from({ readable: child.stdout!, writable: child.stdin! });
  const logs: LogRecord[] = [];
  const violations: HypercallError[] = [];
  let beats = 0;
  let ready!: () => void;
  const isReady = new Promise<void>((r) => { ready = r; });
  const host = new HostEndpoint(stream, {
    windowCount: 1,
    heartbeatMs: 50,
    helloTimeoutMs: 20_000, // a cold node + tsx start on a loaded 2-core machine
    handler: {
      mapWindow: () => ({ iova: 0x100000n, length: 0x200000n, offset: 0n, fdSlot: 3, deviceRead: true, deviceWrite: true, hugePages: false }),
      irqSetup: () => HcStatus.DENIED,
      log: (r) => logs.push(r),
      heartbeat: () => { beats++; },
      ready: () => ready(),
    },
    onViolation: (e) => violations.push(e),
  });
  const exited = new Promise<number | null>((r) => child.on('exit', (code) => r(code)));
  await isReady;
  await new Promise((r) => setTimeout(r, 200));
  assert.equal(logs, [{ level: LogLevel.INFO, text: 'mapped 2097152 bytes at iova 0x100000, heartbeat 50 ms' }]);
  assert.ok(beats >= 3, `heartbeats: ${beats}`);
  assert.is(host.peer?.name, 'child-driver');
  assert.is(host.peer?.pid, child.pid);
  await host.shutdown(2000, ShutdownReason.STOP);
  assert.is(await exited, 0);
  assert.equal(violations.filter((v) => v.code !== 'ERR_HC_CLOSED'), []);
  host.close();
});

test.run();
