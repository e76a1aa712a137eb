/**
 * Bounding a mutant's loops: every `while (c)` and `do ... while (c)` becomes
 * `while (__dmaboxGuard() && (c))`, every `for (a; c; b)` gets `__dmaboxGuard() && (c)` as its
 * condition, every `for (x of xs)` iterates `__dmaboxGuardIter(xs)`; the guard (guard.ts) is
 * imported on the file's first line, so line numbers stay those of the original. `for...in`
 * (finite) and recursion (a stack overflow throws) need no guard.
 */
import { pathToFileURL } from 'node:url';
import { matching } from './operators.js';
import { scan, type Token } from './scanner.js';

export const GUARD = '__dmaboxGuard';
export const GUARD_ITER = '__dmaboxGuardIter';

interface Edit {
  at: number;
  text: string;
}

function isPunct(t: Token | undefined, text: string): boolean {
  return t !== undefined && t.kind === 'punct' && t.text === text;
}

/** The source with its loops guarded and the guard imported from `guardFile` (an absolute path). */
export function instrument(source: string, guardFile: string): string {
  const tokens = scan(source);
  const edits: Edit[] = [];
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    if (t.kind !== 'name' || (t.text !== 'while' && t.text !== 'for') || !isPunct(tokens[i + 1], '(')) continue;
    if (isPunct(tokens[i - 1], '.')) continue;
    const open = i + 1;
    const close = matching(tokens, open);
    if (close < 0) continue;
    if (t.text === 'while') {
      edits.push({ at: tokens[open]!.end, text: `${GUARD}() && (` }, { at: tokens[close]!.start, text: ')' });
      continue;
    }
    // for: the `;`s and `of` at the header's own depth.
    const semis: number[] = [];
    let of = -1;
    let depth = 0;
    for (let j = open + 1; j < close; j++) {
      const u = tokens[j]!;
      if (u.kind === 'punct' && (u.text === '(' || u.text === '[' || u.text === '{')) depth++;
      else if (u.kind === 'punct' && (u.text === ')' || u.text === ']' || u.text === '}')) depth--;
      else if (depth === 0 && isPunct(u, ';')) semis.push(j);
      else if (depth === 0 && u.kind === 'name' && u.text === 'of' && of < 0 && j > open + 1) of = j;
    }
    if (semis.length === 2) {
      const [a, b] = semis as [number, number];
      if (b === a + 1) edits.push({ at: tokens[a]!.end, text: ` ${GUARD}()` });
      else edits.push({ at: tokens[a]!.end, text: ` ${GUARD}() && (` }, { at: tokens[b]!.start, text: ')' });
    } else if (of >= 0 && semis.length === 0) {
      edits.push({ at: tokens[of]!.end, text: ` ${GUARD_ITER}(` }, { at: tokens[close]!.start, text: ')' });
    }
  }
  let out = source;
  // Apply from the end; at one offset, later edits (a closing paren) go after earlier ones.
  edits.sort((x, y) => y.at - x.at);
  for (const e of edits) out = out.slice(0, e.at) + e.text + out.slice(e.at);
  const url = pathToFileURL(guardFile).href;
  return `import { guard as ${GUARD}, guardIter as ${GUARD_ITER} } from ${JSON.stringify(url)}; ${out}`;
}
