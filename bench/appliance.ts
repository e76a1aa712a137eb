/**
 * `npm run bench -- appliance [--repeat=N] [--no-results]`: the flagship appliance image
 * (appliance/examples/storage.yaml): build time, output sizes (as built and xz-compressed), and,
 * booted N times in the lab's machine (QEMU, TCG), the time from QEMU's start to stage 1's
 * verification, to both drivers ready, and to the manager having left root (serving). The goals
 * (issue 15): under 60 MB compressed, serving within 15 s under TCG on this machine.
 */
import { execFileSync } from 'node:child_process';
import { appendFileSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { bootAppliance } from '../appliance/build/boot.js';
import { buildAppliance } from '../appliance/build/build.js';
import { labCacheDir, repoRoot } from '../appliance/lab/setup.js';
import { machineSummary } from './machine.js';

const median = (xs: number[]): number => {
  const s = [...xs].sort((a, b) => a - b);
  return s.length % 2 ? s[(s.length - 1) >> 1]! : (s[s.length / 2 - 1]! + s[s.length / 2]!) / 2;
};

export async function run(argv: string[]): Promise<void> {
  const repeat = Number(argv.find((a) => a.startsWith('--repeat='))?.slice(9) ?? 3);
  const out = mkdtempSync(join(tmpdir(), 'dmabox-bench-appliance-'));
  try {
    const checkout = repoRoot();
    const load0 = readFileSync('/proc/loadavg', 'utf8').split(' ')[0];
    const built = await buildAppliance({
      spec: join(checkout, 'appliance', 'examples', 'storage.yaml'),
      out,
      checkout,
      kernelCache: join(labCacheDir(), 'kernel'),
    });
    const sizes = Object.entries(built.manifest.outputs).map(([name, o]) => {
      const xz = name === 'cmdline' ? o.bytes : execFileSync('xz', ['-9', '-T1', '-c', join(out, name)], { maxBuffer: 256 << 20 }).length;
      return { name, bytes: o.bytes, xz };
    });
    const total = sizes.reduce((s, x) => s + x.bytes, 0);
    const totalXz = sizes.reduce((s, x) => s + x.xz, 0);
    const boots: { verified: number; ready: number; serving: number }[] = [];
    for (let i = 0; i < repeat; i++) {
      const t0 = performance.now();
      const at = (): number => (performance.now() - t0) / 1000;
      const b = await bootAppliance({ dir: out });
      try {
        await b.waitFor(/dmabox-appliance: verified /, 180_000);
        const verified = at();
        await b.waitFor(/^up: /, 300_000);
        const ready = at();
        await b.waitFor(/^privileges: the manager is uid/, 120_000);
        boots.push({ verified, ready, serving: at() });
      } finally {
        await b.stop();
      }
    }
    const mib = (n: number): string => `${(n / 2 ** 20).toFixed(1)} MiB`;
    const s = (x: number): string => `${x.toFixed(1)} s`;
    const lines = [
      `build (mksquashfs xz, dm-verity, initramfs; kernel cached): ${s(built.ms / 1000)}; load average ${load0} at the start`,
      `image: ${mib(total)} as built, ${mib(totalXz)} xz-compressed (${sizes.map((x) => `${x.name} ${mib(x.bytes)} / ${mib(x.xz)}`).join(', ')}); goal: under 60 MB compressed`,
      `boot in QEMU (TCG, 2 vCPUs, PVH entry of the image's kernel), ${repeat} boots, median (min-max) from QEMU's start:`,
      `- stage 1 verified the whole root: ${s(median(boots.map((x) => x.verified)))} (${s(Math.min(...boots.map((x) => x.verified)))}-${s(Math.max(...boots.map((x) => x.verified)))})`,
      `- both drivers ready (up:): ${s(median(boots.map((x) => x.ready)))} (${s(Math.min(...boots.map((x) => x.ready)))}-${s(Math.max(...boots.map((x) => x.ready)))})`,
      `- serving, the manager without root: ${s(median(boots.map((x) => x.serving)))} (${s(Math.min(...boots.map((x) => x.serving)))}-${s(Math.max(...boots.map((x) => x.serving)))}); goal: under 15 s`,
    ];
    console.log(lines.join('\n'));
    if (!argv.includes('--no-results')) {
      const file = join(checkout, 'bench', 'RESULTS.md');
      appendFileSync(
        file,
        `\n## ${new Date().toISOString().slice(0, 16).replace('T', ' ')} UTC: appliance (storage.yaml)\n${machineSummary()}\n\n${lines.join('\n')}\n`,
      );
      console.log(`recorded in ${file}`);
    }
  } finally {
    rmSync(out, { recursive: true, force: true });
  }
}
