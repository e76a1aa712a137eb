/**
 * The lab suite: `runLabSuite({ strict })`, called by scripts/run-tests.ts (`npm test`, `npm run
 * test:lab`). Sets up the lab (cached), boots it ONCE with one NVMe (64 MiB), one e1000e on slirp and
 * QEMU's DMAR fault trace on, runs every compiled lab test inside the guest
 *   node node_modules/uvu/bin.js dist/test/lab '\.test\.js$'
 * from the checkout, with DMABOX_LAB=1 and DMABOX_LAB_DMAR_TRACE naming the trace file as the
 * guest sees it, prints the guest's output live, and returns uvu's counts.
 *
 * It never passes silently: no qemu, or not root, gives `skippedReason` (the caller, with strict
 * (CI=true), turns a skip into a failure); a guest that dies or times out, or a run that ends before
 * uvu's summary, is a failure naming the log.
 */
import { existsSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { parseUvuSummary } from '../../scripts/run-tests.js';
import { ApplianceError, type ApplianceCode } from '../image/errors.js';
import { launchLab, which, type LabResult } from './launch.js';
import { isRoot, repoRoot, setupLab } from './setup.js';

export interface LabSuiteResult {
  passed: number;
  failed: number;
  skipped: number;
  skippedReason?: string;
}

/** Generous but bounded: boot and the suite take well under a minute once the cache is warm. */
export const SUITE_TIMEOUT_MS = 20 * 60_000;

/** Boots tried when the guest dies before /init (never when anything of ours ran). */
const BOOT_ATTEMPTS = 2;

/** Set-up failures that mean "this machine cannot run the lab" (a skip with the reason), not a broken lab. */
const SKIP_CODES: ReadonlySet<ApplianceCode> = new Set<ApplianceCode>(['ERR_IMAGE_NOT_ROOT', 'ERR_IMAGE_TOOL_MISSING', 'ERR_LAB_QEMU_MISSING']);

function countTests(dir: string): number {
  if (!existsSync(dir)) return 0;
  let n = 0;
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.isDirectory()) n += countTests(join(dir, e.name));
    else if (/\.test\.js$/.test(e.name)) n++;
  }
  return n;
}

/**
 * `strict` (CI=true) is the caller's to apply: scripts/run-tests.ts counts a skip as a failure then.
 * Here it changes nothing, since every outcome is already reported as pass, fail or skip-with-reason.
 */
export async function runLabSuite(options: { strict: boolean; timeoutMs?: number }): Promise<LabSuiteResult> {
  const say = (m: string) => console.log(`lab: ${m}`);
  const root = repoRoot();
  if (!isRoot()) {
    // QEMU itself would run, but the guest reads the host's / over 9p with this user's rights, the
    // lab tests expect root's view of it, and the cache may need apt (root) to be filled.
    const qemu = which('qemu-system-x86_64') ? '' : '; qemu-system-x86_64 is not installed either (as root: npm run setup)';
    return {
      passed: 0,
      failed: 0,
      skipped: 1,
      skippedReason: `not root (uid ${process.getuid?.()}): the lab needs root for its set-up (apt) and so that the guest, which reads the host's / with the launching user's rights, sees what root sees; run the lab suite as root${qemu}`,
    };
  }
  const labTests = join(root, 'dist', 'test', 'lab');
  const files = countTests(labTests);
  if (files === 0) {
    console.error(`lab: no compiled lab tests under ${labTests} (run npm run build): counted as one failure`);
    return { passed: 0, failed: 1, skipped: 0 };
  }

  let image;
  try {
    image = await setupLab({ log: (m) => say(`setup: ${m}`) });
  } catch (e) {
    if (e instanceof ApplianceError && SKIP_CODES.has(e.code)) return { passed: 0, failed: 0, skipped: 1, skippedReason: `${e.code}: ${e.message}` };
    console.error(`lab: set-up failed: ${(e as Error).message}`);
    return { passed: 0, failed: 1, skipped: 0 };
  }
  say(
    `set-up ${(image.ms / 1000).toFixed(1)} s (${image.cached ? 'cached' : 'built'}), kernel ${image.kernel.kver}; booting with 1 NVMe, 1 e1000e, the device-error extras (blkdebug NVMe, AER e1000e, monitor relay), DMAR trace; ${files} lab test file(s)`,
  );

  let output = '';
  const bootOnce = () => {
    let inCommand = false;
    output = '';
    return launchLab({
      image,
      nvme: [{ sizeMiB: 64 }],
      e1000e: [{ net: 'slirp' }],
      deviceErrors: true,
      dmarTrace: true,
      cwd: root,
      command: ['node', 'node_modules/uvu/bin.js', 'dist/test/lab', '\\.test\\.js$'],
      env: { FORCE_COLOR: '0', NODE_OPTIONS: '--enable-source-maps' },
      timeoutMs: options.timeoutMs ?? SUITE_TIMEOUT_MS,
      onLine: (line) => {
        // Live: /init's markers and everything from the command on; the kernel's boot chatter stays in the log.
        if (line.startsWith('dmabox-lab: run')) inCommand = true;
        if (inCommand) output += `${line}\n`;
        if (inCommand || line.startsWith('dmabox-lab:')) console.log(`  | ${line}`);
        if (line.startsWith('dmabox-lab: done')) inCommand = false;
      },
    });
  };
  let result: LabResult | undefined;
  let crashedOnce = false;
  for (let attempt = 1; !result; attempt++) {
    try {
      result = await bootOnce();
    } catch (e) {
      // A boot that never reached /init ran none of our code (a TCG guest on a loaded host can trip
      // over its own timing): boot once more, and say so. Anything later is a failure at once.
      if (e instanceof ApplianceError && e.code === 'ERR_LAB_BOOT_FAILED' && attempt < BOOT_ATTEMPTS) {
        console.error(`lab: boot attempt ${attempt} failed, booting again: ${e.message.split('\n')[0]}`);
        continue;
      }
      // QEMU itself crashing (a fault signal in the emulator: QEMU 7.2's NVMe model has been seen to,
      // rarely, under the FLR-under-load test) is not a verdict of any test: the whole suite runs
      // once more, on a fresh QEMU, and only that run's results count; a second crash fails.
      if (e instanceof ApplianceError && e.code === 'ERR_LAB_QEMU_CRASHED' && !crashedOnce) {
        crashedOnce = true;
        console.error(`lab: ${e.message.split('\n')[0]}; running the whole suite again on a fresh QEMU (only that run counts)`);
        continue;
      }
      console.error(`lab: FAILED: ${(e as Error).message}`);
      return { passed: 0, failed: 1, skipped: 0 };
    }
  }
  const t = result.timings;
  say(
    `boot (QEMU start to the command) ${((t.bootMs ?? 0) / 1000).toFixed(1)} s, suite in the guest ${((t.commandMs ?? 0) / 1000).toFixed(1)} s, ` +
      `QEMU start to power-off ${(t.totalMs / 1000).toFixed(1)} s; DMAR faults traced: ${result.dmarFaults.length}; log: ${result.logFile}`,
  );
  const counts = parseUvuSummary(output);
  if (!counts) {
    console.error(`lab: the guest command exited ${result.status} before uvu printed its summary: counted as one failure (log: ${result.logFile})`);
    return { passed: 0, failed: 1, skipped: 0 };
  }
  if (result.status !== 0 && counts.failed === 0) {
    console.error(`lab: uvu reported no failure but exited ${result.status}: counted as one failure (log: ${result.logFile})`);
    return { ...counts, failed: 1 };
  }
  return counts;
}
