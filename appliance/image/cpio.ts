/**
 * A writer for the cpio "newc" format (the SVR4 portable format with no CRC, magic 070701), the
 * format the kernel unpacks an initramfs from (Documentation/driver-api/early-userspace/buffer-format.rst).
 *
 * Written here rather than driving the `cpio` tool so that the archive's owners, modes and device
 * nodes (/dev/console) need no root and no staging folder, and so the same input always gives the
 * same bytes (the cache key is the content).
 *
 * Each entry: a 110-byte ASCII header (magic + 13 fields of 8 hex digits), the name with its NUL,
 * padded to a multiple of 4, then the data padded to a multiple of 4. The archive ends with an entry
 * named TRAILER!!!.
 */
import { ApplianceError } from './errors.js';

export const S_IFDIR = 0o040000;
export const S_IFREG = 0o100000;
export const S_IFLNK = 0o120000;
export const S_IFCHR = 0o020000;

export type CpioEntry =
  | { type: 'dir'; path: string; mode?: number }
  | { type: 'file'; path: string; data: Uint8Array | string; mode?: number }
  | { type: 'symlink'; path: string; target: string }
  | { type: 'chardev'; path: string; major: number; minor: number; mode?: number };

const HEADER = 110;

const cpioError = (message: string): ApplianceError => new ApplianceError('ERR_IMAGE_CPIO', message);

function hex8(n: number): string {
  if (!Number.isInteger(n) || n < 0 || n > 0xffffffff) throw cpioError(`cpio header field ${n} does not fit 8 hex digits (0..0xffffffff)`);
  return n.toString(16).padStart(8, '0');
}

const pad4 = (n: number): number => (4 - (n % 4)) % 4;

/** Build a newc archive from entries (paths without a leading '/'; parents must come first). */
export function buildCpio(entries: readonly CpioEntry[]): Buffer {
  const parts: Buffer[] = [];
  let ino = 1;
  const add = (name: string, mode: number, data: Buffer, rdevMajor = 0, rdevMinor = 0, nlink = 1): void => {
    const nameBytes = Buffer.from(`${name}\0`, 'utf8');
    const header =
      '070701' +
      [
        ino++,
        mode,
        0 /* uid */,
        0 /* gid */,
        nlink,
        0 /* mtime: fixed, for reproducible bytes */,
        data.length,
        0,
        0 /* dev */,
        rdevMajor,
        rdevMinor,
        nameBytes.length,
        0 /* check */,
      ]
        .map(hex8)
        .join('');
    parts.push(Buffer.from(header, 'ascii'), nameBytes, Buffer.alloc(pad4(HEADER + nameBytes.length)), data, Buffer.alloc(pad4(data.length)));
  };
  for (const e of entries) {
    const path = e.path.replace(/^\/+/, '');
    if (!path) throw cpioError('cpio entry with an empty path (after leading slashes are removed)');
    switch (e.type) {
      case 'dir':
        add(path, S_IFDIR | (e.mode ?? 0o755), Buffer.alloc(0), 0, 0, 2);
        break;
      case 'file':
        add(
          path,
          S_IFREG | (e.mode ?? 0o644),
          typeof e.data === 'string' ? Buffer.from(e.data, 'utf8') : Buffer.from(e.data.buffer, e.data.byteOffset, e.data.byteLength),
        );
        break;
      case 'symlink':
        add(path, S_IFLNK | 0o777, Buffer.from(e.target, 'utf8'));
        break;
      case 'chardev':
        add(path, S_IFCHR | (e.mode ?? 0o600), Buffer.alloc(0), e.major, e.minor);
        break;
    }
  }
  ino = 0;
  add('TRAILER!!!', 0, Buffer.alloc(0), 0, 0, 1);
  return Buffer.concat(parts);
}

/** Read a newc archive back (for tests and for checking an image): names, modes, data. */
export function readCpio(archive: Uint8Array): { name: string; mode: number; data: Buffer; rdevMajor: number; rdevMinor: number }[] {
  const buf = Buffer.from(archive.buffer, archive.byteOffset, archive.byteLength);
  const out: { name: string; mode: number; data: Buffer; rdevMajor: number; rdevMinor: number }[] = [];
  let off = 0;
  for (;;) {
    if (off + HEADER > buf.length) throw cpioError(`cpio archive truncated at byte ${off}: no header and no TRAILER!!! entry there`);
    const magic = buf.toString('ascii', off, off + 6);
    if (magic !== '070701') throw cpioError(`bad cpio magic '${magic}' at byte ${off}: not a newc (070701) archive, or a corrupt one`);
    const field = (i: number): number => parseInt(buf.toString('ascii', off + 6 + i * 8, off + 14 + i * 8), 16);
    const mode = field(1),
      size = field(6),
      rdevMajor = field(9),
      rdevMinor = field(10),
      nameSize = field(11);
    const nameStart = off + HEADER;
    const name = buf.toString('utf8', nameStart, nameStart + nameSize - 1);
    const dataStart = nameStart + nameSize + pad4(HEADER + nameSize);
    if (name === 'TRAILER!!!') return out;
    out.push({ name, mode, data: buf.subarray(dataStart, dataStart + size), rdevMajor, rdevMinor });
    off = dataStart + size + pad4(size);
  }
}
