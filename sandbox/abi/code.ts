/**
 * The driver code image: the driver module and every file it reaches by static relative import,
 * as the manager hands them to a container (fd 4, boot.ts FD.CODE). The container reads it before
 * it confines itself and evaluates it only after (sandbox/container/loader.ts), so no driver code
 * runs unconfined, and the container opens no file to get it. The manager writes a fresh memfd
 * for every container: what a compromised container writes into its copy never reaches the next.
 *
 * Layout (little-endian):
 *
 *   offset 0   u32  magic      CODE_MAGIC ('DMBC')
 *   offset 4   u16  version    CODE_VERSION
 *   offset 6   u16  files      1..CODE_MAX_FILES
 *   offset 8   u32  bytes      the whole image, header included, at most CODE_MAX_BYTES
 *   offset 12  u16  entry      index of the driver module among the files
 *   offset 14  u16  reserved   0
 *   offset 16  char name[16]   the driver's name for HELLO: printable ASCII, NUL-padded
 *   offset 32  files, each:    u32 pathBytes, u32 sourceBytes, path (UTF-8), source (UTF-8)
 *
 * Paths are relative, `/`-separated, without `.` or `..` segments, end in `.js` or `.mjs`, and
 * are unique; a module's relative import specifiers resolve against its own path.
 */
import { paddedAscii } from './ascii.js';
import { BootError } from './boot.js';

export const CODE_MAGIC = 0x43424d44;
/** Bump when the layout changes: a container refuses an image of another version. */
export const CODE_VERSION = 1;
export const CODE_HEADER_BYTES = 32;
export const CODE_MAX_FILES = 1024;
export const CODE_MAX_BYTES = 16 * 1024 * 1024;
export const CODE_MAX_PATH = 256;

export interface CodeFile {
  readonly path: string;
  readonly source: string;
}

export interface CodeImage {
  /** The driver's name (HELLO). */
  readonly name: string;
  readonly files: readonly CodeFile[];
  /** Index of the driver module in `files`. */
  readonly entry: number;
}

const PATH = /^(?:[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*\/)*[A-Za-z0-9_@+-][A-Za-z0-9_.@+-]*\.m?js$/;

/** Whether `p` may name a file of an image. */
export function validCodePath(p: string): boolean {
  return p.length <= CODE_MAX_PATH && PATH.test(p) && !p.split('/').some((s) => s === '.' || s === '..');
}

function bad(what: string): BootError {
  return new BootError('ERR_BOOT_CODE', `driver code image: ${what}`, { fix: 'the container and the manager must come from the same build' });
}

export function encodeCode(image: CodeImage): Uint8Array {
  const { name, files, entry } = image;
  if (!/^[ -~]{1,16}$/.test(name)) throw bad(`driver name '${name.slice(0, 40)}' is not 1 to 16 printable ASCII characters`);
  if (files.length < 1 || files.length > CODE_MAX_FILES) throw bad(`${files.length} files; 1 to ${CODE_MAX_FILES} fit`);
  if (!Number.isInteger(entry) || entry < 0 || entry >= files.length) throw bad(`entry ${entry} is not one of the ${files.length} files`);
  const seen = new Set<string>();
  const parts = files.map((f) => {
    if (!validCodePath(f.path)) throw bad(`path '${f.path.slice(0, 80)}' is not a relative .js path without . or .. segments`);
    if (seen.has(f.path)) throw bad(`path '${f.path}' appears twice`);
    seen.add(f.path);
    return { path: Buffer.from(f.path, 'utf8'), source: Buffer.from(f.source, 'utf8') };
  });
  const total = parts.reduce((n, p) => n + 8 + p.path.length + p.source.length, CODE_HEADER_BYTES);
  if (total > CODE_MAX_BYTES) throw bad(`${total} bytes; at most ${CODE_MAX_BYTES} fit`);
  const out = Buffer.alloc(total);
  out.writeUInt32LE(CODE_MAGIC, 0);
  out.writeUInt16LE(CODE_VERSION, 4);
  out.writeUInt16LE(files.length, 6);
  out.writeUInt32LE(total, 8);
  out.writeUInt16LE(entry, 12);
  out.write(name, 16, 16, 'latin1');
  let at = CODE_HEADER_BYTES;
  for (const p of parts) {
    out.writeUInt32LE(p.path.length, at);
    out.writeUInt32LE(p.source.length, at + 4);
    p.path.copy(out, at + 8);
    p.source.copy(out, at + 8 + p.path.length);
    at += 8 + p.path.length + p.source.length;
  }
  return out;
}

/** The header alone (the first CODE_HEADER_BYTES): the name and how many bytes the whole image has. */
export function decodeCodeHeader(head: Uint8Array): { name: string; bytes: number; files: number; entry: number } {
  if (head.length < CODE_HEADER_BYTES) throw bad(`${head.length} bytes; the header alone has ${CODE_HEADER_BYTES}`);
  const v = new DataView(head.buffer, head.byteOffset, head.byteLength);
  const magic = v.getUint32(0, true),
    version = v.getUint16(4, true);
  if (magic !== CODE_MAGIC) throw bad(`magic 0x${magic.toString(16)}; expected 0x${CODE_MAGIC.toString(16)}`);
  if (version !== CODE_VERSION) throw bad(`version ${version}; this container reads version ${CODE_VERSION}`);
  const files = v.getUint16(6, true),
    bytes = v.getUint32(8, true),
    entry = v.getUint16(12, true);
  if (files < 1 || files > CODE_MAX_FILES) throw bad(`${files} files; 1 to ${CODE_MAX_FILES} fit`);
  if (bytes < CODE_HEADER_BYTES || bytes > CODE_MAX_BYTES) throw bad(`${bytes} bytes; ${CODE_HEADER_BYTES} to ${CODE_MAX_BYTES} fit`);
  if (entry >= files) throw bad(`entry ${entry} is not one of the ${files} files`);
  if (v.getUint16(14, true) !== 0) throw bad('the reserved header field is not zero');
  const name = paddedAscii(head.subarray(16, 32));
  if (name === undefined) throw bad('the driver name is not printable ASCII, NUL-padded');
  if (!name) throw bad('the driver name is empty');
  return { name, bytes, files, entry };
}

const utf8 = new TextDecoder('utf-8', { fatal: true });

/** A whole image, every field checked. */
export function decodeCode(bytes: Uint8Array): CodeImage {
  const h = decodeCodeHeader(bytes);
  if (bytes.length < h.bytes) throw bad(`${bytes.length} bytes; the header says ${h.bytes}`);
  const v = new DataView(bytes.buffer, bytes.byteOffset, h.bytes);
  const files: CodeFile[] = [];
  const seen = new Set<string>();
  let at = CODE_HEADER_BYTES;
  for (let i = 0; i < h.files; i++) {
    if (at + 8 > h.bytes) throw bad(`file ${i} starts beyond the image`);
    const pn = v.getUint32(at, true),
      sn = v.getUint32(at + 4, true);
    if (pn > CODE_MAX_PATH || at + 8 + pn + sn > h.bytes) throw bad(`file ${i} runs beyond the image`);
    let path: string, source: string;
    try {
      path = utf8.decode(bytes.subarray(at + 8, at + 8 + pn));
      source = utf8.decode(bytes.subarray(at + 8 + pn, at + 8 + pn + sn));
    } catch {
      throw bad(`file ${i} is not valid UTF-8`);
    }
    if (!validCodePath(path)) throw bad(`file ${i}'s path '${path.slice(0, 80)}' is not a relative .js path without . or .. segments`);
    if (seen.has(path)) throw bad(`path '${path}' appears twice`);
    seen.add(path);
    files.push({ path, source });
    at += 8 + pn + sn;
  }
  if (at !== h.bytes) throw bad(`${h.bytes - at} bytes after the last file`);
  return { name: h.name, files, entry: h.entry };
}
