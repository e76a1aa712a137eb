/** Shared helpers of the sandbox tests: a small simulated NVMe policy and bounded waits. */
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { parsePolicies } from '../../policies/index.js';
import type { Policy } from '../../policies/types.js';
import type { SandboxEvent, Supervisor } from '../../sandbox/manager/supervisor.js';
import type { CounterName } from '../../sandbox/abi/device.js';

export function simPolicy(name = 'sim-test', extra = '', restart = '{ maxRestarts: 2, window: 60s, backoff: { initial: 50ms, max: 1s } }'): Policy {
  const yaml = `
version: 1
name: ${name}
device: { sim: nvme, capacity: 4MiB, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 16 }
windows:
  - { size: 512KiB, label: queues }
  - { size: 2MiB, label: data }
restart: ${restart}
${extra}
`;
  return parsePolicies(yaml, 'test.yaml').policies[0]!.policy;
}

/**
 * The built JavaScript of a test fixture module, `path` relative to test/sandbox/ (`fixtures/x.js`):
 * beside this file when the tests run from dist/, the build's copy when they run from sources under
 * tsx (a driver module must be JavaScript: npm run build first).
 */
export function builtFixture(path: string): string {
  const here = fileURLToPath(import.meta.url);
  const dir = dirname(here);
  return here.endsWith('.ts') ? join(dir, '..', '..', 'dist', 'test', 'sandbox', path) : join(dir, path);
}

/** `policy` with its driver named by the module at `path` instead of a built-in name. */
export function withModule(policy: Policy, path: string): Policy {
  const { name: _builtin, ...rest } = policy.driver;
  return { ...policy, driver: { ...rest, module: path } };
}

/** Resolve when `pred` holds, polling every 10 ms; reject after `ms`. */
export async function until(what: string, pred: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}

export function kinds(s: Supervisor): string[] {
  return s.events.filter((e: SandboxEvent) => e.kind !== 'log').map((e) => e.kind);
}

export function pattern(n: number, seed: number): Uint8Array {
  const b = new Uint8Array(n);
  for (let i = 0; i < n; i++) b[i] = (i * 31 + seed * 7 + (i >> 9)) & 0xff;
  return b;
}

/** Supervisor options that run the device-process fixture (fixtures/device.ts) with `mode`. */
export function deviceFixture(mode = 'control'): { deviceEntry: string; deviceEntryArgs: string[] } {
  return { deviceEntry: builtFixture('fixtures/device.js'), deviceEntryArgs: [mode] };
}

const DEVICE_SIGNAL = { hang: 'SIGUSR2', resume: 'SIGHUP', wild: 'SIGWINCH', revoke: 'SIGTTIN', error: 'SIGTTOU' } as const;
const DEVICE_ACK = {
  hang: 'fixture: hung',
  resume: 'fixture: resumed',
  wild: 'fixture: wild write',
  revoke: 'fixture: revoked',
  error: 'fixture: error raised',
} as const;

/** Work a control of the device-process fixture and wait for its acknowledgement in the sandbox's log. */
export async function deviceCtl(s: Supervisor, what: keyof typeof DEVICE_SIGNAL): Promise<void> {
  const p = s.sim!.process!;
  const before = s.events.length;
  process.kill(p.pid!, DEVICE_SIGNAL[what]);
  await until(`the device fixture to ${what}`, () => s.events.slice(before).some((e) => e.text.includes(DEVICE_ACK[what])), 10_000);
}

/** A counter of the current device process's last heartbeat (0 when it has not reported it). */
export function deviceCounter(s: Supervisor, name: CounterName): number {
  return s.sim?.process?.counters[name] ?? 0;
}

/** The longest stall of this process's event loop since the meter started (a 10 ms interval's largest gap), until `stop()`. */
export function loopGapMeter(): { readonly maxGap: number; stop(): void } {
  let last = performance.now(),
    maxGap = 0;
  const tick = setInterval(() => {
    const now = performance.now();
    maxGap = Math.max(maxGap, now - last);
    last = now;
  }, 10);
  return {
    get maxGap() {
      return maxGap;
    },
    stop: () => clearInterval(tick),
  };
}
