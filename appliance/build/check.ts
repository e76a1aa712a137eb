/**
 * `dmabox appliance test DIR --psk FILE`: check an image from the host as a user would. It boots
 * the image (boot.ts), then, through the forwarded NBD port, so every byte crosses the sandboxed
 * e1000e driver, the appliance's TCP stack and the sandboxed NVMe driver:
 *   1. nbdinfo sees the export over TLS;
 *   2. nbdcopy writes random data and reads it back unchanged;
 *   3. (a --test image) while nbdcopy writes, the NVMe driver's container is killed, then the
 *      NIC driver's: the copy still succeeds and reads back unchanged (the client noticed nothing);
 *   4. on a machine without an IOMMU, PID 1 refuses to start drivers (doctor's checks at boot);
 *   5. a copy of the root image with one byte changed is refused at boot (dm-verity).
 * Each step prints one line; the result is the list of steps with their outcome.
 */
import { randomBytes } from 'node:crypto';
import { closeSync, copyFileSync, mkdtempSync, openSync, readFileSync, readSync, rmSync, writeFileSync, writeSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import { execTool } from '../image/exec.js';
import { bootAppliance, type BootedAppliance } from './boot.js';
import type { Manifest } from './build.js';

export interface CheckOptions {
  dir: string;
  /** The PSK file a client uses (the image's key). */
  psk: string;
  /** The PSK identity (default: the first in the file). */
  identity?: string;
  /** Bytes per copy (default 8 MiB). */
  bytes?: number;
  say?: (line: string) => void;
  onConsole?: (line: string) => void;
}

export interface CheckStep {
  name: string;
  ok: boolean;
  detail: string;
  ms: number;
}

/** A client run with a time bound: its exit status and output, never a rejection (a failure is a status). */
function run(cmd: string, args: string[], timeoutMs: number): Promise<{ code: number; out: string }> {
  return execTool(cmd, args, { timeoutMs }).then(
    (r) => ({ code: r.code, out: `${r.stdout}${r.stderr}` }),
    (e: Error) => ({ code: -1, out: e.message }),
  );
}

function control(port: number, line: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = net.connect(port, '127.0.0.1', () => s.write(`${line}\n`));
    let got = '';
    s.setTimeout(10_000, () => s.destroy(new ApplianceError('ERR_LAB_TIMEOUT', 'the test control did not answer within 10 s')));
    s.on('data', (d: Buffer) => (got += d.toString()));
    s.on('end', () => resolve(got.trim()));
    s.on('error', reject);
  });
}

export async function checkAppliance(o: CheckOptions): Promise<CheckStep[]> {
  const say = o.say ?? (() => {});
  const manifest = JSON.parse(readFileSync(join(o.dir, 'manifest.json'), 'utf8')) as Manifest;
  const exp = manifest.exports[0];
  if (!exp)
    throw new ApplianceError('ERR_APPLIANCE_INPUT', `${o.dir}'s image serves no NBD export on TCP`, {
      fix: 'check the image of a spec whose disk policy has linkback.nbd.address',
    });
  const identity = o.identity ?? /^([^#:\s][^:]*):/m.exec(readFileSync(o.psk, 'utf8'))?.[1];
  if (!identity) throw new ApplianceError('ERR_APPLIANCE_INPUT', `${o.psk} holds no identity:key line`, { fix: 'pass the PSK file the image was built with' });
  const bytes = o.bytes ?? 8 << 20;
  const steps: CheckStep[] = [];
  const step = async (name: string, fn: () => Promise<string>): Promise<boolean> => {
    const t0 = performance.now();
    let ok = true;
    let detail: string;
    try {
      detail = await fn();
    } catch (e) {
      ok = false;
      detail = (e as Error).message;
    }
    const s = { name, ok, detail, ms: performance.now() - t0 };
    steps.push(s);
    say(`${ok ? 'ok  ' : 'FAIL'} ${name} (${(s.ms / 1000).toFixed(1)} s): ${detail}`);
    return ok;
  };
  const work = mkdtempSync(join(tmpdir(), 'dmabox-appliance-check-'));
  let booted: BootedAppliance | undefined;
  try {
    booted = await bootAppliance({ dir: o.dir, testControl: manifest.test, ...(o.onConsole ? { onLine: o.onConsole } : {}) });
    const b = booted;
    const uri = `nbds://${identity}@127.0.0.1:${b.hostPort}/${exp.export}?tls-psk-file=${o.psk}`;
    const up = await step('boot: verified root, both drivers up, the manager without root', async () => {
      await b.waitFor(/dmabox-appliance: verified /, 180_000);
      const upLine = await b.waitFor(/^up: /, 300_000);
      await b.waitFor(/^privileges: the manager is uid/, 120_000);
      await b.waitFor(/TAP \S+: address /, 60_000);
      return upLine;
    });
    if (!up) return steps;
    await step('nbdinfo over TLS through both sandboxed drivers', async () => {
      // The first connection may race the appliance's network coming up: try for a while.
      let last = '';
      for (let i = 0; i < 30; i++) {
        const r = await run('nbdinfo', ['--json', uri], 30_000);
        if (r.code === 0) {
          const j = JSON.parse(r.out) as { TLS: boolean; exports: { 'export-size': number }[] };
          if (!j.TLS) throw new ApplianceError('ERR_APPLIANCE_INPUT', 'nbdinfo says the session is not TLS');
          return `TLS, ${j.exports[0]!['export-size']} bytes`;
        }
        last = r.out.trim().split('\n').pop() ?? '';
        await new Promise((r2) => setTimeout(r2, 1000));
      }
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `nbdinfo could not reach the export: ${last}`);
    });
    const roundTrip = async (label: string, during?: () => Promise<string>): Promise<string> => {
      const src = join(work, `${label}.in`);
      const back = join(work, `${label}.out`);
      const data = randomBytes(bytes);
      writeFileSync(src, data);
      const copy = run('nbdcopy', [src, uri], 300_000);
      const said = during ? await during() : '';
      const w = await copy;
      if (w.code !== 0) throw new ApplianceError('ERR_APPLIANCE_INPUT', `nbdcopy in failed: ${w.out.trim()}`);
      const r = await run('nbdcopy', [uri, back], 300_000);
      if (r.code !== 0) throw new ApplianceError('ERR_APPLIANCE_INPUT', `nbdcopy out failed: ${r.out.trim()}`);
      if (!readFileSync(back).subarray(0, bytes).equals(data))
        throw new ApplianceError('ERR_APPLIANCE_INPUT', 'the data read back differs from what was written');
      return `${bytes / 2 ** 20} MiB in and out unchanged${said ? `; ${said}` : ''}`;
    };
    await step('nbdcopy round trip', () => roundTrip('plain'));
    if (b.controlPort !== undefined) {
      const port = b.controlPort;
      await step('containers killed under the client (the disk driver, then the NIC driver): nothing noticed', () =>
        roundTrip('killed', async () => {
          await new Promise((r) => setTimeout(r, 500));
          const before = b.console.length;
          const a = await control(port, `kill ${exp.sandbox}`);
          // The NIC's turn once the disk's successor is serving (its replayed requests included).
          await b.waitFor(new RegExp(`${exp.sandbox} ready: `), 120_000, before);
          const said = [a];
          for (const other of manifest.sandboxes.filter((x) => x.linkback === 'tap')) said.push(await control(port, `kill ${other.name}`));
          return said.join(', ');
        }),
      );
    }
  } finally {
    await booted?.stop();
  }
  await step('a machine without an IOMMU: drivers refused (doctor at boot)', async () => {
    const t = await bootAppliance({ dir: o.dir, noIommu: true });
    try {
      const line = await t.waitFor(/dmabox-appliance: (fatal|manager starting|WARNING: DMA IS NOT CONFINED)/, 180_000);
      if (!/fatal: this machine cannot confine DMA/.test(line)) throw new ApplianceError('ERR_APPLIANCE_INPUT', `expected a refusal, got: ${line}`);
      return line.replace(/^.*fatal: /, '');
    } finally {
      await t.stop();
    }
  });
  await step('one byte changed in the root filesystem: refused at boot', async () => {
    const bad = join(work, 'tampered.img');
    copyFileSync(join(o.dir, 'root.img'), bad);
    const at = Math.floor(manifest.verity.hashOffset / 2);
    const fd = openSync(bad, 'r+');
    const one = Buffer.alloc(1);
    readSync(fd, one, 0, 1, at);
    one[0] = one[0]! ^ 0x01;
    writeSync(fd, one, 0, 1, at);
    closeSync(fd);
    const t = await bootAppliance({ dir: o.dir, rootImage: bad });
    try {
      const line = await t.waitFor(/dmabox-appliance: fatal: /, 180_000);
      if (!/does not match its root hash/.test(line)) throw new ApplianceError('ERR_APPLIANCE_VERITY', `stage 1 stopped for another reason: ${line}`);
      if (t.console.some((l) => /manager starting/.test(l))) throw new ApplianceError('ERR_APPLIANCE_VERITY', 'the manager started from a tampered root');
      return line.replace(/^.*fatal: /, '');
    } finally {
      await t.stop();
    }
  });
  rmSync(work, { recursive: true, force: true });
  return steps;
}
