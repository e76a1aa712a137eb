/** Helpers of the sandboxed-NBD tests: bounded client runs, a simulated NVMe policy with an NBD linkback. */
import { execFile } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import * as assert from 'uvu/assert';
import { parsePolicies } from '../../../policies/index.js';
import type { Policy } from '../../../policies/types.js';

export const MiB = 1 << 20;

export function tempDir(): { dir: string; remove(): void } {
  const dir = mkdtempSync(join(tmpdir(), 'dmabox-sbnbd-'));
  return { dir, remove: () => rmSync(dir, { recursive: true, force: true }) };
}

export interface RunResult {
  code: number;
  stdout: string;
  stderr: string;
}

/** Run a client with a time bound; never rejects. */
export function run(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<RunResult> {
  return new Promise((resolve) => {
    execFile(cmd, args, { timeout: opts.timeoutMs ?? 120_000, cwd: opts.cwd, maxBuffer: 64 * MiB, encoding: 'utf8' }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : -1) : 0;
      if (err && code === -1) stderr += `\n${err.message}`;
      resolve({ code, stdout, stderr });
    });
  });
}

export async function must(cmd: string, args: string[], opts: { timeoutMs?: number; cwd?: string } = {}): Promise<string> {
  const r = await run(cmd, args, opts);
  assert.is(r.code, 0, `${cmd} ${args.join(' ')} exited ${r.code}: ${r.stderr.trim()}`);
  return r.stdout;
}

export async function needTools(tools: string[]): Promise<void> {
  for (const tool of tools) {
    const r = await run('sh', ['-c', `command -v ${tool}`]);
    assert.is(r.code, 0, `${tool} is not installed: run scripts/setup-host.sh (Debian: libnbd-bin, qemu-utils, fio, nbdkit)`);
  }
}

/** A simulated NVMe sandbox exported over NBD on `socket`. */
export function nbdPolicy(name: string, socket: string, opts: { capacity?: string; restart?: string } = {}): Policy {
  const yaml = `
version: 1
name: ${name}
device: { sim: nvme, capacity: ${opts.capacity ?? '128MiB'}, blockSize: 512 }
driver: { name: nvme, queues: 1, depth: 64 }
windows:
  - { size: 1MiB, label: queues }
  - { size: 8MiB, label: io-buffers }
restart: ${opts.restart ?? '{ maxRestarts: 3, window: 60s, backoff: { initial: 100ms, max: 30s } }'}
linkback: { nbd: { socket: ${socket}, export: ${name} } }
`;
  return parsePolicies(yaml, `${name}.yaml`).policies[0]!.policy;
}

/** Resolve when `pred` holds, polling every 10 ms; reject after `ms`. */
export async function until(what: string, pred: () => boolean, ms = 30_000): Promise<void> {
  const end = Date.now() + ms;
  while (!pred()) {
    if (Date.now() > end) throw new Error(`timed out after ${ms} ms waiting for ${what}`);
    await new Promise((r) => setTimeout(r, 10));
  }
}
