/**
 * Loading policy files for a command: every problem printed as `file:line: field: ...`, warnings
 * (an `unconfined: true`, say) printed as WARNING lines, and `undefined` when nothing may go on.
 */
import { PolicyError, formatProblem, loadPolicyFiles, type LoadResult } from '../policies/loader.js';

export interface ErrOut {
  err(s: string): void;
}

/** `consequence`: what the problems mean for this command ("nothing was started"). */
export function loadPoliciesOrReport(files: readonly string[], io: ErrOut, consequence?: string): LoadResult | undefined {
  let result: LoadResult;
  try {
    result = loadPolicyFiles([...files]);
  } catch (e) {
    if (!(e instanceof PolicyError)) throw e;
    for (const p of e.problems) io.err(`${formatProblem(p)}\n`);
    io.err(`${e.problems.length} problem${e.problems.length === 1 ? '' : 's'}${consequence ? `; ${consequence}` : ''}\n`);
    return undefined;
  }
  for (const w of result.warnings) io.err(`WARNING ${formatProblem(w)}\n`);
  return result;
}
