/**
 * `--reproduce FILE`: rerun one input verbosely on this thread: a finding file (its input, kind and
 * seed) or a corpus `.input` file (raw bytes). The trial's log, the directives that fired and the
 * finding, if any; `same` says whether it is the one the file recorded.
 */
import { readFileSync } from 'node:fs';
import { readFinding } from './corpus.js';
import { FuzzError } from './errors.js';
import { execute, loadTarget, type Finding } from './exec.js';
import { decode, describe } from './input.js';

export interface Reproduction {
  finding: Finding | undefined;
  /** The kind the finding file recorded (undefined for a corpus input). */
  saved: string | undefined;
  same: boolean;
}

export async function reproduce(spec: string, file: string, seed: number | undefined, timeoutMs: number, log: (line: string) => void): Promise<Reproduction> {
  let input: Uint8Array;
  let saved: string | undefined;
  let s = seed ?? 1;
  if (file.endsWith('.input')) {
    try {
      input = new Uint8Array(readFileSync(file));
    } catch (e) {
      throw new FuzzError('ERR_FUZZ_REPRODUCE', `${file}: cannot be read: ${(e as Error).message}`, {
        fix: 'name a corpus .input file or a findings/*.json file',
        cause: e,
      });
    }
  } else {
    const f = readFinding(file);
    input = new Uint8Array(Buffer.from(f.input, 'hex'));
    saved = f.kind;
    s = seed ?? (typeof f.seed === 'number' ? f.seed : 1);
  }
  for (const d of decode(input)) log(`directive: ${describe(d)}`);
  const target = await loadTarget(spec, s);
  const r = await execute(target, input, { timeoutMs, log });
  if (r.finding?.stack) for (const l of r.finding.stack.split('\n').slice(0, 12)) log(`  ${l}`);
  return { finding: r.finding, saved, same: saved === undefined ? r.finding === undefined : r.finding?.kind === saved };
}
