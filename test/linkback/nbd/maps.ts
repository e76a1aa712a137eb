/**
 * What the hole tests write and how they read maps back: the qemu-io commands, the disk they leave,
 * `nbdinfo --map --json` and a lookup in its answer.
 */
import { must } from '../sandbox/helpers.js';

const MiB = 1 << 20;

/** The writes every test builds on, as qemu-io commands, and what the disk then holds. */
export const OPS = [
  'write -P 0xab 0 16M', // data
  'write -z 4M 1M', // zeroes, kept allocated (no unmap)
  'write -z -u 6M 1M', // zeroes, may punch a hole
  'discard 8M 1M', // trim
  'write -P 0xcd 8256k 4k', // data inside the trimmed range
];
export function expected(size: number): Buffer {
  const b = Buffer.alloc(size);
  b.fill(0xab, 0, 16 * MiB);
  b.fill(0, 4 * MiB, 5 * MiB);
  b.fill(0, 6 * MiB, 7 * MiB);
  b.fill(0, 8 * MiB, 9 * MiB);
  b.fill(0xcd, 8256 * 1024, 8260 * 1024);
  return b;
}

export interface MapEntry {
  offset: number;
  length: number;
  type: number;
}

export async function nbdinfoMap(u: string): Promise<MapEntry[]> {
  return JSON.parse(await must('nbdinfo', ['--map', '--json', u])) as MapEntry[];
}

/** The base:allocation flags at `offset` in a map. */
export function flagsAt(map: MapEntry[], offset: number): number {
  const e = map.find((x) => x.offset <= offset && offset < x.offset + x.length);
  if (!e) throw new Error(`the map does not cover ${offset}: ${JSON.stringify(map)}`);
  return e.type;
}
