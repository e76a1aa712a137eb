/**
 * Boot an appliance image in the lab's machine (QEMU: emulated VT-d, an NVMe with a fresh disk, an
 * e1000e on QEMU's user network with the NBD port forwarded to the host), with the image's own
 * kernel, initrd and command line and its root image as a read-only virtio disk. The console is
 * kept (and mirrored to `onLine`); `waitFor` resolves on a console line, `exited` when QEMU ends.
 */
import { spawn, type ChildProcess } from 'node:child_process';
import { createHash } from 'node:crypto';
import { existsSync, mkdtempSync, readFileSync, renameSync, rmSync, truncateSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import { vmlinuxFromBzImage } from '../image/kernel.js';
import { labMac, qemuArgs } from '../lab/machine.js';
import { TEST_CONTROL_PORT } from './build.js';

/** Where the appliance's network puts it on QEMU's user network, and its NBD port. */
export const GUEST_ADDRESS = '10.0.2.15';
export const NBD_PORT = 10809;

export interface BootOptions {
  /** The image folder (kernel, initrd, root.img, cmdline). */
  dir: string;
  /** The root image to boot instead of DIR/root.img (a tampered copy, in a test). */
  rootImage?: string;
  nvmeMiB?: number;
  /** Host port forwarded to the guest's NBD port (default: a free one). */
  hostPort?: number;
  /** Forward the test-only control's port too (a --test image), to a free host port. */
  testControl?: boolean;
  /** A machine without the VT-d IOMMU: one that cannot confine DMA. */
  noIommu?: boolean;
  memMiB?: number;
  onLine?: (line: string) => void;
}

export interface BootedAppliance {
  readonly hostPort: number;
  /** The host port of the test-only control (with `testControl`). */
  readonly controlPort: number | undefined;
  readonly console: string[];
  /** Resolves with the first console line from index `since` on matching `re` (rejects after `ms` or when QEMU ends first). */
  waitFor(re: RegExp, ms: number, since?: number): Promise<string>;
  readonly exited: Promise<number | null>;
  stop(): Promise<void>;
}

function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = net.createServer();
    s.once('error', reject);
    s.listen(0, '127.0.0.1', () => {
      const { port } = s.address() as net.AddressInfo;
      s.close(() => resolve(port));
    });
  });
}

/**
 * What QEMU boots: the image's own kernel, entered through PVH from its unpacked ELF (the same
 * kernel: under TCG this skips seconds of firmware loading and in-guest decompression), cached by
 * the bzImage's hash; the bzImage itself when it cannot be unpacked.
 */
function bootKernel(bzImage: string): string {
  const bz = readFileSync(bzImage);
  const cached = join(tmpdir(), `dmabox-appliance-vmlinux-${createHash('sha256').update(bz).digest('hex').slice(0, 16)}`);
  if (existsSync(cached)) return cached;
  const elf = vmlinuxFromBzImage(bz);
  if (typeof elf === 'string') return bzImage;
  writeFileSync(`${cached}.partial-${process.pid}`, elf);
  renameSync(`${cached}.partial-${process.pid}`, cached);
  return cached;
}

export async function bootAppliance(o: BootOptions): Promise<BootedAppliance> {
  for (const f of ['kernel', 'initrd', 'root.img', 'cmdline'])
    if (!existsSync(join(o.dir, f)))
      throw new ApplianceError('ERR_APPLIANCE_INPUT', `${join(o.dir, f)} is missing: ${o.dir} is not an appliance image`, {
        fix: 'build one with dmabox appliance build SPEC --out DIR',
      });
  const run = mkdtempSync(join(tmpdir(), 'dmabox-appliance-run-'));
  const nvme = join(run, 'nvme.img');
  writeFileSync(nvme, '');
  truncateSync(nvme, (o.nvmeMiB ?? 64) * 2 ** 20);
  const hostPort = o.hostPort ?? (await freePort());
  const controlPort = o.testControl ? await freePort() : undefined;
  const forward = [{ hostPort, guestAddress: GUEST_ADDRESS, guestPort: NBD_PORT }];
  if (controlPort !== undefined) forward.push({ hostPort: controlPort, guestAddress: GUEST_ADDRESS, guestPort: TEST_CONTROL_PORT });
  const args = qemuArgs({
    kernel: bootKernel(join(o.dir, 'kernel')),
    ...(o.noIommu ? { noIommu: true } : {}),
    initrd: join(o.dir, 'initrd'),
    cmdline: readFileSync(join(o.dir, 'cmdline'), 'utf8').trim(),
    accel: 'tcg',
    memMiB: o.memMiB ?? 1024,
    cpus: 2,
    nvme: [{ image: nvme, serial: 'appliance0' }],
    e1000e: [{ net: 'slirp', mac: labMac(0), hostForward: forward }],
    shares: [],
    disks: [{ image: o.rootImage ?? join(o.dir, 'root.img') }],
  });
  const qemu: ChildProcess = spawn('qemu-system-x86_64', args, { stdio: ['ignore', 'pipe', 'pipe'] });
  const lines: string[] = [];
  const waiters = new Set<{ re: RegExp; resolve: (l: string) => void }>();
  let partial = '';
  const onData = (d: Buffer): void => {
    partial += d.toString('latin1');
    const parts = partial.split(/\r?\n/);
    partial = parts.pop()!;
    for (const line of parts) {
      lines.push(line);
      o.onLine?.(line);
      for (const w of waiters)
        if (w.re.test(line)) {
          waiters.delete(w);
          w.resolve(line);
        }
    }
  };
  qemu.stdout!.on('data', onData);
  qemu.stderr!.on('data', onData);
  const exited = new Promise<number | null>((resolve) => {
    qemu.once('error', () => resolve(null));
    qemu.once('exit', (code) => {
      rmSync(run, { recursive: true, force: true });
      resolve(code);
    });
  });
  let gone = false;
  void exited.then(() => {
    gone = true;
  });
  return {
    hostPort,
    controlPort,
    console: lines,
    waitFor(re, ms, since = 0) {
      const seen = lines.slice(since).find((l) => re.test(l));
      if (seen !== undefined) return Promise.resolve(seen);
      return new Promise<string>((resolve, reject) => {
        const w = { re, resolve };
        waiters.add(w);
        const tail = (): string => lines.slice(-15).join('\n');
        const timer = setTimeout(() => {
          waiters.delete(w);
          reject(new ApplianceError('ERR_LAB_TIMEOUT', `no console line matching ${re} within ${ms / 1000} s; the console ended:\n${tail()}`));
        }, ms);
        void exited.then(() => {
          if (!waiters.has(w)) return;
          waiters.delete(w);
          clearTimeout(timer);
          reject(new ApplianceError('ERR_LAB_GUEST_DIED', `QEMU ended before a console line matching ${re}; the console ended:\n${tail()}`));
        });
        const orig = w.resolve;
        w.resolve = (l) => {
          clearTimeout(timer);
          orig(l);
        };
      });
    },
    exited,
    async stop() {
      if (gone) return;
      qemu.kill('SIGTERM');
      const t = setTimeout(() => qemu.kill('SIGKILL'), 5000);
      await exited;
      clearTimeout(t);
    },
  };
}
