/**
 * The magic and version every shared-memory format carries in its header (README.md,
 * "Shared memory"). The manager writes both before a container starts; the container checks them
 * when it maps the memory and refuses anything else with an AbiError naming the format, both
 * versions and the fix; the manager checks them again wherever it reads back a header the
 * container could have written (there a mismatch is a violation, not an exception).
 */
import { AbiError } from './errors.js';

export interface SharedFormat {
  /** For messages: "block ring", "register mailbox", "packet rings". */
  readonly name: string;
  readonly magic: number;
  readonly version: number;
  /** u32 word indices of the magic and the version in the header. */
  readonly magicWord: number;
  readonly versionWord: number;
}

const FIX =
  'the manager and its containers must come from the same dmabox build: after an upgrade, restart the manager (it spawns containers from the build on disk)';

const hex = (n: number): string => `0x${(n >>> 0).toString(16).padStart(8, '0')}`;

/** The manager's side: write the magic and the version (before the container is spawned). */
export function writeFormat(u32: Uint32Array, f: SharedFormat): void {
  u32[f.magicWord] = f.magic;
  u32[f.versionWord] = f.version;
}

/** What is wrong with the header, or null when magic and version are this build's. */
export function formatProblem(u32: Uint32Array, f: SharedFormat): string | null {
  const magic = Atomics.load(u32, f.magicWord),
    version = Atomics.load(u32, f.versionWord);
  if (magic !== f.magic)
    return `${f.name}: magic ${hex(magic)} where ${hex(f.magic)} belongs: not a dmabox ${f.name}, or one from a build before it had a magic`;
  if (version !== f.version) return `${f.name}: version ${version}, and this build speaks version ${f.version} only`;
  return null;
}

/** The container's side, when it maps the memory: throws ERR_ABI_MAGIC or ERR_ABI_VERSION. */
export function checkFormat(u32: Uint32Array, f: SharedFormat): void {
  const problem = formatProblem(u32, f);
  if (problem === null) return;
  throw new AbiError(Atomics.load(u32, f.magicWord) !== f.magic ? 'ERR_ABI_MAGIC' : 'ERR_ABI_VERSION', problem, { fix: FIX });
}
