/**
 * The root filesystem image: entries staged in a folder with explicit modes (never the umask's),
 * packed by mksquashfs with every timestamp and owner fixed, padded to 4 KiB, then protected by
 * dm-verity with its hash tree appended to the same file (`veritysetup format --hash-offset`).
 * The salt and UUID come from the inputs' digest, so the same inputs give the same bytes and the
 * same root hash, which goes on the kernel command line.
 */
import { chmodSync, copyFileSync, mkdirSync, statSync, symlinkSync, truncateSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ApplianceError } from '../image/errors.js';
import { execOk } from '../image/exec.js';
import type { RootEntry } from './rootfs.js';

export const VERITY_BLOCK = 4096;

/** Write `entries` under `dir` (which must be empty or absent), each with its mode set explicitly. */
export function stageRootfs(entries: readonly RootEntry[], dir: string): void {
  mkdirSync(dir, { recursive: true });
  chmodSync(dir, 0o755);
  const dirs: { path: string; mode: number }[] = [];
  for (const e of entries) {
    const p = join(dir, e.path);
    switch (e.type) {
      case 'dir':
        mkdirSync(p, { recursive: true });
        dirs.push({ path: p, mode: e.mode });
        break;
      case 'file':
        copyFileSync(e.source, p);
        chmodSync(p, e.mode);
        break;
      case 'data':
        writeFileSync(p, e.data);
        chmodSync(p, e.mode);
        break;
      case 'symlink':
        symlinkSync(e.target, p);
        break;
    }
  }
  // Parents made implicitly by mkdir -p got the umask's mode: set every one (deepest last is fine).
  for (const d of dirs) chmodSync(d.path, d.mode);
}

/** mksquashfs with fixed times and owners: the same folder gives the same image on any host. */
export async function makeSquashfs(dir: string, out: string, epoch: number): Promise<void> {
  await execOk(
    'mksquashfs',
    [
      dir,
      out,
      '-noappend',
      '-all-root',
      '-no-xattrs',
      '-comp',
      'xz',
      '-b',
      '256K',
      '-all-time',
      String(epoch),
      '-mkfs-time',
      String(epoch),
      '-no-progress',
      '-quiet',
    ],
    { what: 'mksquashfs', fix: 'install squashfs-tools (scripts/setup-host.sh)', timeoutMs: 600_000 },
  );
}

export interface Verity {
  rootHash: string;
  /** Where the hash tree starts in the image (bytes), = the padded filesystem size. */
  hashOffset: number;
  dataBlocks: number;
  salt: string;
  uuid: string;
}

/** A UUID (version 4 layout) from 16 bytes of a digest, so it is fixed by the inputs. */
export function uuidFrom(hex: string): string {
  const b = hex.slice(0, 32).split('');
  b[12] = '4';
  b[16] = ((parseInt(b[16]!, 16) & 0x3) | 0x8).toString(16);
  const s = b.join('');
  return `${s.slice(0, 8)}-${s.slice(8, 12)}-${s.slice(12, 16)}-${s.slice(16, 20)}-${s.slice(20, 32)}`;
}

/** Pad `image` to whole verity blocks and append its hash tree; returns the root hash and layout. */
export async function addVerity(image: string, seedHex: string): Promise<Verity> {
  const size = statSync(image).size;
  const hashOffset = Math.ceil(size / VERITY_BLOCK) * VERITY_BLOCK;
  truncateSync(image, hashOffset);
  const salt = seedHex.slice(0, 64);
  const uuid = uuidFrom(seedHex.slice(64 - 32));
  const dataBlocks = hashOffset / VERITY_BLOCK;
  const r = await execOk(
    'veritysetup',
    [
      'format',
      `--hash-offset=${hashOffset}`,
      `--data-blocks=${dataBlocks}`,
      `--data-block-size=${VERITY_BLOCK}`,
      `--hash-block-size=${VERITY_BLOCK}`,
      '--hash=sha256',
      `--salt=${salt}`,
      `--uuid=${uuid}`,
      image,
      image,
    ],
    { what: 'veritysetup format', fix: 'install cryptsetup-bin (scripts/setup-host.sh)' },
  );
  const m = /Root hash:\s+([0-9a-f]{64})/.exec(r.stdout);
  if (!m)
    throw new ApplianceError('ERR_APPLIANCE_VERITY', `veritysetup format printed no root hash:\n${r.stdout}`, {
      fix: 'check veritysetup --version (cryptsetup 2.6 prints "Root hash:")',
    });
  return { rootHash: m[1]!, hashOffset, dataBlocks, salt, uuid };
}
