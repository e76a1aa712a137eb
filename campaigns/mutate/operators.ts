/**
 * The mutation operators: SWIFI's faults for a JavaScript driver, found on the tokens of its built
 * module (scanner.ts). Each operator lists its sites in a file; a site is one textual replacement
 * (`start..end` becomes `after`), named by line and column with its text before and after, so a
 * trial record says exactly which mutant ran and `replay` rebuilds it.
 *
 * | operator | what it changes | SWIFI / Rio fault it stands for |
 * |---|---|---|
 * | `relational` | `<` <-> `<=`, `>` <-> `>=` (a bound off by one) | loop, branch |
 * | `equality` | `===` <-> `!==`, `==` <-> `!=` (a flipped check) | branch |
 * | `logical` | `&&` <-> `||` | branch |
 * | `negate-condition` | `if (c)` / `while (c)` -> `if (!(c))` | branch, loop |
 * | `arithmetic` | binary `+` <-> `-` | source register |
 * | `bitwise` | `&` <-> `|` | source register |
 * | `constant` | a number literal off by one, zero, or all ones | source register, text |
 * | `index` | `a[i]` -> `a[(i) + 1]` (a shifted index or pointer) | pointer, destination register |
 * | `drop-statement` | an expression statement removed | nop, destination register |
 * | `remove-return` | `return`, `break`, `continue` removed (falls through) | interface, loop |
 */
import type { Token } from './scanner.js';

export const MUTATION_OPERATORS = [
  'relational',
  'equality',
  'logical',
  'negate-condition',
  'arithmetic',
  'bitwise',
  'constant',
  'index',
  'drop-statement',
  'remove-return',
] as const;
export type MutationOperator = (typeof MUTATION_OPERATORS)[number];

export interface Site {
  readonly operator: MutationOperator;
  readonly start: number;
  readonly end: number;
  readonly after: string;
  readonly line: number;
  readonly col: number;
}

const SWAP: Partial<Record<MutationOperator, Readonly<Record<string, string>>>> = {
  relational: { '<': '<=', '<=': '<', '>': '>=', '>=': '>' },
  equality: { '===': '!==', '!==': '===', '==': '!=', '!=': '==' },
  logical: { '&&': '||', '||': '&&' },
  bitwise: { '&': '|', '|': '&' },
  arithmetic: { '+': '-', '-': '+' },
};

/** Words that never end an operand (a `+` after them is unary) nor start an expression statement. */
const KEYWORDS = new Set([
  'break',
  'case',
  'catch',
  'class',
  'const',
  'continue',
  'debugger',
  'default',
  'do',
  'else',
  'export',
  'extends',
  'finally',
  'for',
  'function',
  'if',
  'import',
  'let',
  'return',
  'static',
  'switch',
  'throw',
  'try',
  'var',
  'while',
  'with',
  'yield',
  'async',
  'get',
  'set',
  'of',
  'in',
  'instanceof',
  'typeof',
  'void',
  'delete',
  'new',
  'await',
]);

/** Does this token end an operand (so the operator after it is binary, and `[` after it is an index)? */
function endsOperand(t: Token | undefined): boolean {
  if (!t) return false;
  if (t.kind === 'num' || t.kind === 'str' || t.kind === 'regex') return true;
  if (t.kind === 'template') return t.text.endsWith('`');
  if (t.kind === 'name') return !KEYWORDS.has(t.text);
  return t.text === ')' || t.text === ']';
}

const OPEN: Readonly<Record<string, string>> = { '(': ')', '[': ']', '{': '}' };

/** Index of the bracket closing the one at `i`, or -1. */
export function matching(tokens: readonly Token[], i: number): number {
  let depth = 0;
  for (let j = i; j < tokens.length; j++) {
    depth += bracketDelta(tokens[j]!);
    if (depth === 0) return tokens[j]!.kind === 'punct' ? j : -1;
    if (depth < 0) return -1;
  }
  return -1;
}

function bracketDelta(t: Token): number {
  if (t.kind === 'template') return (t.text.endsWith('${') ? 1 : 0) - (t.text.startsWith('}') ? 1 : 0);
  if (t.kind !== 'punct') return 0;
  if (OPEN[t.text]) return 1;
  if (t.text === ')' || t.text === ']' || t.text === '}') return -1;
  return 0;
}

function integerText(text: string): bigint | undefined {
  const body = text.replace(/_/g, '').replace(/n$/, '');
  if (/[.eE]/.test(body) && !/^0[xX]/.test(body)) return undefined;
  try {
    return BigInt(body);
  } catch {
    return undefined;
  }
}

/** The constant operator's replacements of one number literal: off by one, zero, all ones. */
function constants(text: string): string[] {
  const big = text.endsWith('n');
  const hex = /^0[xX]/.test(text);
  const int = integerText(text);
  const render = (v: bigint) => (hex ? `0x${v.toString(16)}` : v.toString()) + (big ? 'n' : '');
  const out: string[] = [];
  if (int === undefined) {
    const v = Number(text.replace(/_/g, ''));
    out.push(String(v + 1));
    if (v !== 0) out.push('0');
    out.push('0xffffffff');
    return out;
  }
  out.push(render(int + 1n));
  if (int !== 0n) out.push(render(0n));
  const ones = big ? 0xffffffffffffffffn : 0xffffffffn;
  if (int !== ones) out.push(big ? `0x${ones.toString(16)}n` : '0xffffffff');
  return out;
}

/** Every site of `operator` in a file's tokens; `skip(offset)` leaves out positions that must not change (import declarations). */
export function findSites(operator: MutationOperator, tokens: readonly Token[], source: string, skip: (offset: number) => boolean): Site[] {
  const sites: Site[] = [];
  const add = (t: Token, start: number, end: number, after: string) => {
    if (!skip(start)) sites.push({ operator, start, end, after, line: t.line, col: t.col });
  };
  for (let i = 0; i < tokens.length; i++) {
    const t = tokens[i]!;
    const prev = tokens[i - 1];
    const next = tokens[i + 1];
    switch (operator) {
      case 'relational':
      case 'equality':
      case 'logical':
      case 'bitwise': {
        const to = t.kind === 'punct' ? SWAP[operator]![t.text] : undefined;
        if (to) add(t, t.start, t.end, to);
        break;
      }
      case 'arithmetic': {
        const to = t.kind === 'punct' ? SWAP.arithmetic![t.text] : undefined;
        // Binary only, and not string concatenation (messages are not the driver's logic).
        if (to && endsOperand(prev) && prev!.kind !== 'str' && prev!.kind !== 'template' && next && next.kind !== 'str' && next.kind !== 'template')
          add(t, t.start, t.end, to);
        break;
      }
      case 'constant': {
        if (t.kind !== 'num') break;
        // A property key (`{ 0: x }`) or a member right after a dot is not a value.
        if (next?.text === ':' && (prev?.text === '{' || prev?.text === ',')) break;
        for (const to of constants(t.text)) add(t, t.start, t.end, to);
        break;
      }
      case 'index': {
        if (t.kind !== 'punct' || t.text !== '[' || !endsOperand(prev)) break;
        const close = matching(tokens, i);
        if (close < 0 || close === i + 1) break;
        const inner = tokens.slice(i + 1, close);
        if (inner.length === 1 && (inner[0]!.kind === 'str' || inner[0]!.kind === 'template')) break;
        const first = tokens[i + 1]!;
        const last = tokens[close - 1]!;
        add(t, t.start, tokens[close]!.end, `[(${source.slice(first.start, last.end)}) + 1]`);
        break;
      }
      case 'negate-condition': {
        if (t.kind !== 'name' || (t.text !== 'if' && t.text !== 'while') || next?.text !== '(') break;
        const close = matching(tokens, i + 1);
        if (close < 0 || close === i + 2) break;
        const cond = source.slice(tokens[i + 2]!.start, tokens[close - 1]!.end);
        add(t, next.start, tokens[close]!.end, `(!(${cond}))`);
        break;
      }
      case 'drop-statement': {
        if (t.kind !== 'name' || KEYWORDS.has(t.text)) {
          if (!(t.kind === 'name' && (t.text === 'await' || t.text === 'delete' || t.text === 'new'))) break;
        }
        if (prev && !(prev.kind === 'punct' && (prev.text === ';' || prev.text === '{' || prev.text === '}'))) break;
        if (next && next.kind === 'punct' && next.text === ':') break; // a label or an object key
        let depth = 0;
        let end = -1;
        for (let j = i; j < tokens.length; j++) {
          depth += bracketDelta(tokens[j]!);
          if (depth < 0) break;
          if (depth === 0 && tokens[j]!.kind === 'punct' && tokens[j]!.text === ';') {
            end = j;
            break;
          }
        }
        if (end < 0) break;
        // A declaration-like start (`x = function` is fine; `foo() {` is a method and has no `;` at depth 0).
        add(t, t.start, tokens[end]!.end, ';');
        break;
      }
      case 'remove-return': {
        if (t.kind !== 'name' || (t.text !== 'return' && t.text !== 'break' && t.text !== 'continue')) break;
        if (prev && prev.kind === 'punct' && prev.text === '.') break;
        add(t, t.start, next && next.kind === 'punct' && next.text === ';' ? t.end : next ? next.start : t.end, '');
        break;
      }
    }
  }
  return sites;
}
