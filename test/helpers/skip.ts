/**
 * Tests that cannot run on this machine are reported as skipped, with the reason, never passed
 * silently. A test whose precondition is missing (root, a command, a device node, QEMU) is
 * registered with uvu's `test.skip`, so uvu counts it under `Skipped:` and the test command's
 * closing line (`N passed, N failed, N skipped`) does too; the reason is printed when the file
 * loads, one line per test.
 *
 *   const rootTest = testIf(needsRoot());
 *   rootTest('as root: a real TAP interface', async () => { ... });
 *
 *   const labTest = testIf(firstBlocker(needsRoot(), needsQemu()), suite('lab'));
 *
 * A precondition that CI always meets (a Debian package scripts/setup-host.sh installs) is a
 * failure when missing, not a skip: assert it inside the test instead.
 */
import { accessSync, constants, existsSync, statSync } from 'node:fs';
import { delimiter, join } from 'node:path';
import { test as defaultTest, type Callback, type Test } from 'uvu';

/** Why a test cannot run here, or null when it can. */
export type Blocker = string | null;

/** Running as root (uid 0). */
export function needsRoot(): Blocker {
  const uid = process.getuid?.();
  return uid === 0 ? null : `needs root (running as uid ${uid ?? 'unknown'})`;
}

/** `name` found as an executable on PATH; `debianPackage` is named in the reason. */
export function needsCommand(name: string, debianPackage: string, path: string = process.env.PATH ?? ''): Blocker {
  for (const dir of path.split(delimiter)) {
    if (!dir) continue;
    const file = join(dir, name);
    try {
      if (statSync(file).isFile()) {
        accessSync(file, constants.X_OK);
        return null;
      }
    } catch {
      // not here
    }
  }
  return `needs the command ${name} (Debian package ${debianPackage}; scripts/setup-host.sh installs it as root)`;
}

/** `path` exists (a device node, a kernel interface); `what` says what provides it. */
export function needsPath(path: string, what: string): Blocker {
  return existsSync(path) ? null : `needs ${path} (${what})`;
}

/** /dev/net/tun, for TAP interfaces. */
export function needsTun(): Blocker {
  return needsPath('/dev/net/tun', 'the tun driver: modprobe tun');
}

/** QEMU for the lab machine (appliance/lab). */
export function needsQemu(): Blocker {
  return needsCommand('qemu-system-x86_64', 'qemu-system-x86');
}

/** The first of `blockers` that blocks, or null when none does. */
export function firstBlocker(...blockers: Blocker[]): Blocker {
  return blockers.find((b) => b !== null) ?? null;
}

/** How a skipped test is announced; tests of this helper replace it. */
export let announce = (line: string): void => console.log(line);
export function setAnnounce(f: (line: string) => void): void {
  announce = f;
}

/**
 * `t` (uvu's default suite unless given) when `blocker` is null; otherwise a function that
 * registers each test as skipped (`t.skip`) and prints `skipped: NAME: REASON`.
 */
export function testIf<T>(blocker: Blocker, t: Test<T> = defaultTest as unknown as Test<T>): (name: string, fn: Callback<T>) => void {
  if (blocker === null) return t;
  return (name: string) => {
    announce(`  skipped: ${name}: ${blocker}`);
    t.skip(name);
  };
}
