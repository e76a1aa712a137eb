/**
 * Register tables as data, in the style of v86's device models: a BAR's registers are a list of
 * `{ offset, name, read, write }`, and the table dispatches 32-bit accesses to them through an
 * array indexed by dword (no Map, no closure per access). Ranges cover arrays of registers such as
 * NVMe doorbells or e1000e's RAL/RAH: `{ start, end, name, read(off), write(off, v) }`.
 *
 * A register without `read` reads 0; without `write` ignores writes (read-only). An offset no
 * register covers reads 0 and ignores writes, and is counted in `unclaimed` so a model's tests can
 * see that a driver touched something that does not exist.
 */
import { SimError } from './errors.js';

/** What a BAR looks like to the PCI function: 32-bit accesses at 4-byte-aligned offsets. */
export interface BarHandler {
  read32(offset: number): number;
  write32(offset: number, value: number): void;
}

/**
 * A BAR's handler that a surprise removal can pull (the fault plans' `removal` classes): once
 * `state.removed`, reads are all ones and writes go nowhere, as on a bus with nothing behind it.
 * Without a plan, the handler itself (no cost).
 */
export function removableBar(handler: BarHandler, state: { readonly removed: boolean } | null | undefined): BarHandler {
  if (!state) return handler;
  return {
    read32: (off: number) => (state.removed ? 0xffffffff : handler.read32(off)),
    write32: (off: number, v: number) => {
      if (!state.removed) handler.write32(off, v);
    },
  };
}

export interface RegisterDef {
  /** Byte offset, a multiple of 4. */
  readonly offset: number;
  /** Spec mnemonic: `CC`, `CSTS`, `RDT`. */
  readonly name: string;
  read?(): number;
  write?(value: number): void;
}

export interface RegisterRange {
  /** First byte offset (a multiple of 4). */
  readonly start: number;
  /** One past the last byte. */
  readonly end: number;
  readonly name: string;
  read?(offset: number): number;
  write?(offset: number, value: number): void;
}

type Reader = (offset: number) => number;
type Writer = (offset: number, value: number) => void;

export class RegisterTable implements BarHandler {
  readonly size: number;
  private readonly readers: (Reader | undefined)[];
  private readonly writers: (Writer | undefined)[];
  private readonly names: (string | undefined)[];
  /** Accesses to offsets no register or range claims. */
  unclaimed = 0;

  constructor(size: number, registers: readonly RegisterDef[], ranges: readonly RegisterRange[] = []) {
    if (!Number.isInteger(size) || size <= 0 || size % 4 !== 0) {
      throw new SimError('ERR_SIM_ARG', `register table size ${size} is not a positive multiple of 4`);
    }
    this.size = size;
    const n = size / 4;
    this.readers = new Array<Reader | undefined>(n).fill(undefined);
    this.writers = new Array<Writer | undefined>(n).fill(undefined);
    this.names = new Array<string | undefined>(n).fill(undefined);
    const claim = (offset: number, name: string): number => {
      if (!Number.isInteger(offset) || offset < 0 || offset % 4 !== 0 || offset >= size) {
        throw new SimError('ERR_SIM_ARG', `register ${name} at offset ${offset}: not a 4-byte-aligned offset inside ${size} bytes`);
      }
      const i = offset / 4;
      if (this.names[i] !== undefined) throw new SimError('ERR_SIM_ARG', `register ${name} at 0x${offset.toString(16)} overlaps ${this.names[i]}`);
      this.names[i] = name;
      return i;
    };
    for (const r of registers) {
      const i = claim(r.offset, r.name);
      const read = r.read,
        write = r.write;
      this.readers[i] = read ? () => read.call(r) : undefined;
      this.writers[i] = write ? (_o, v) => write.call(r, v) : undefined;
    }
    for (const g of ranges) {
      if (g.end <= g.start || g.end > size || g.start % 4 !== 0 || g.end % 4 !== 0) {
        throw new SimError(
          'ERR_SIM_ARG',
          `register range ${g.name} [0x${g.start.toString(16)}, 0x${g.end.toString(16)}): not a 4-byte-aligned range inside ${size} bytes`,
        );
      }
      const read = g.read,
        write = g.write;
      for (let off = g.start; off < g.end; off += 4) {
        const i = claim(off, g.name);
        this.readers[i] = read ? (o) => read.call(g, o) : undefined;
        this.writers[i] = write ? (o, v) => write.call(g, o, v) : undefined;
      }
    }
  }

  read32(offset: number): number {
    const i = offset >>> 2;
    const r = this.readers[i];
    if (r !== undefined) return r(offset) >>> 0;
    if (this.names[i] === undefined) this.unclaimed++;
    return 0;
  }

  write32(offset: number, value: number): void {
    const i = offset >>> 2;
    const w = this.writers[i];
    if (w !== undefined) w(offset, value >>> 0);
    else if (this.names[i] === undefined) this.unclaimed++;
  }

  /** The name of the register at an offset, for traces and error messages. */
  nameAt(offset: number): string | undefined {
    return this.names[offset >>> 2];
  }
}
