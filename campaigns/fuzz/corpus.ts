/**
 * The corpus and the findings on disk. `--corpus DIR` holds one file per input, named by its
 * FNV-1a digest (`<hex>.input`, the raw bytes): loaded at the start (files of other names are left
 * alone), and every input that reached new coverage is added. `--out DIR` gets one JSON file per
 * distinct finding (`findings/<kind>-<hex>.json`: kind, symptom, stack, the input in hex, the
 * spec and seed, and the `--reproduce` command).
 */
import { mkdirSync, readdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { FuzzError } from './errors.js';
import type { Finding } from './exec.js';

export function inputName(input: Uint8Array): string {
  let h = 0x811c9dc5;
  for (let i = 0; i < input.length; i++) h = Math.imul(h ^ input[i]!, 0x01000193) >>> 0;
  return `${h.toString(16).padStart(8, '0')}-${input.length}`;
}

function writable(dir: string, what: string): void {
  try {
    mkdirSync(dir, { recursive: true });
  } catch (e) {
    throw new FuzzError('ERR_FUZZ_CORPUS', `${what} ${dir} cannot be created: ${(e as Error).message}`, { fix: 'name a writable directory', cause: e });
  }
}

export function loadCorpus(dir: string): Uint8Array[] {
  let names: string[];
  try {
    names = readdirSync(dir);
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return [];
    throw new FuzzError('ERR_FUZZ_CORPUS', `corpus ${dir} cannot be read: ${(e as Error).message}`, { fix: 'name a readable directory', cause: e });
  }
  return names
    .filter((n) => n.endsWith('.input'))
    .sort()
    .map((n) => new Uint8Array(readFileSync(join(dir, n))));
}

export function saveInput(dir: string, input: Uint8Array): string {
  writable(dir, 'corpus');
  const file = join(dir, `${inputName(input)}.input`);
  writeFileSync(file, input);
  return file;
}

export interface FindingFile extends Finding {
  input: string;
  spec: string;
  seed: number;
  reproduce: string;
}

export function saveFinding(dir: string, spec: string, seed: number, input: Uint8Array, f: Finding): string {
  const d = join(dir, 'findings');
  writable(d, 'findings directory');
  const file = resolve(d, `${f.kind}-${inputName(input)}.json`);
  const body: FindingFile = {
    ...f,
    input: Buffer.from(input).toString('hex'),
    spec: resolve(spec),
    seed,
    reproduce: `dmabox campaign fuzz ${resolve(spec)} --seed ${seed} --reproduce ${file}`,
  };
  writeFileSync(file, `${JSON.stringify(body, null, 2)}\n`);
  return file;
}

export function readFinding(file: string): FindingFile {
  let v: Partial<FindingFile>;
  try {
    v = JSON.parse(readFileSync(file, 'utf8')) as Partial<FindingFile>;
  } catch (e) {
    throw new FuzzError('ERR_FUZZ_REPRODUCE', `${file}: not a readable finding file: ${(e as Error).message.split('\n')[0]}`, {
      fix: 'name a findings/*.json file written by dmabox campaign fuzz --out, or a corpus *.input file',
      cause: e,
    });
  }
  if (typeof v.input !== 'string' || !/^([0-9a-f]{2})*$/.test(v.input) || typeof v.kind !== 'string')
    throw new FuzzError('ERR_FUZZ_REPRODUCE', `${file}: no input (hex) and kind in it`, {
      fix: 'name a findings/*.json file written by dmabox campaign fuzz --out',
    });
  return v as FindingFile;
}
