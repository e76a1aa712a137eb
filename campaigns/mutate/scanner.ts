/**
 * A JavaScript tokenizer good enough for the mutation operators (operators.ts) on built driver code
 * (tsc's ES2022 output and hand-written modules of the same kind): names, numbers (with bigint,
 * separators, hex/octal/binary), strings, template literals with nested `${}`, regular expressions
 * told from division by the token before them, punctuators by longest match, and comments skipped.
 * Each token keeps its offsets and 1-based line and column, so a mutation can be named file:line.
 * It is not a parser: a mutant it helps build that does not parse is caught when it is loaded.
 */
import { MutateError } from './errors.js';

export type TokenKind = 'name' | 'num' | 'str' | 'template' | 'regex' | 'punct';

export interface Token {
  readonly kind: TokenKind;
  readonly start: number;
  readonly end: number;
  readonly text: string;
  readonly line: number;
  readonly col: number;
}

const PUNCT = [
  '>>>=',
  '...',
  '===',
  '!==',
  '**=',
  '<<=',
  '>>=',
  '>>>',
  '&&=',
  '||=',
  '??=',
  '=>',
  '==',
  '!=',
  '<=',
  '>=',
  '&&',
  '||',
  '??',
  '?.',
  '++',
  '--',
  '+=',
  '-=',
  '*=',
  '/=',
  '%=',
  '&=',
  '|=',
  '^=',
  '**',
  '<<',
  '>>',
];

/** Keywords after which a `/` starts a regular expression, not a division. */
const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'instanceof', 'new', 'delete', 'void', 'throw', 'yield', 'await', 'of']);

function scanError(message: string): MutateError {
  return new MutateError('ERR_MUTATE_SCAN', message, { fix: 'mutate built JavaScript (npm run build); name the file in `files` only if it is plain ES2022' });
}

function isIdStart(c: string): boolean {
  return /[\p{ID_Start}$_]/u.test(c);
}
function isIdPart(c: string): boolean {
  return /[\p{ID_Continue}$\u200c\u200d]/u.test(c);
}

export function scan(source: string): Token[] {
  const tokens: Token[] = [];
  const lineStarts = [0];
  for (let i = 0; i < source.length; i++) if (source.charCodeAt(i) === 10) lineStarts.push(i + 1);
  const position = (offset: number): { line: number; col: number } => {
    let lo = 0;
    let hi = lineStarts.length - 1;
    while (lo < hi) {
      const mid = (lo + hi + 1) >> 1;
      if (lineStarts[mid]! <= offset) lo = mid;
      else hi = mid - 1;
    }
    return { line: lo + 1, col: offset - lineStarts[lo]! + 1 };
  };
  const push = (kind: TokenKind, start: number, end: number) => {
    const p = position(start);
    tokens.push({ kind, start, end, text: source.slice(start, end), line: p.line, col: p.col });
  };
  /** Brace depths at which a template literal's `${` was opened: its `}` resumes the template. */
  const templates: number[] = [];
  let braces = 0;
  let i = 0;
  const n = source.length;

  const regexAllowed = (): boolean => {
    const t = tokens[tokens.length - 1];
    if (!t) return true;
    if (t.kind === 'name') return REGEX_AFTER_WORD.has(t.text);
    if (t.kind === 'punct') return t.text !== ')' && t.text !== ']' && t.text !== '}' && t.text !== '++' && t.text !== '--';
    return false;
  };

  /** Scan template characters from i (just after ` or `}`) to the closing ` or a `${`. */
  const templatePart = (start: number): void => {
    let j = i;
    for (;;) {
      if (j >= n) throw scanError(`unterminated template literal at offset ${start}`);
      const c = source[j]!;
      if (c === '\\') j += 2;
      else if (c === '`') {
        j++;
        break;
      } else if (c === '$' && source[j + 1] === '{') {
        j += 2;
        templates.push(braces);
        braces++;
        break;
      } else j++;
    }
    push('template', start, j);
    i = j;
  };

  while (i < n) {
    const c = source[i]!;
    const d = source[i + 1];
    if (c === ' ' || c === '\t' || c === '\n' || c === '\r' || c === '\f' || c === '\v' || c === '\u00a0' || c === '\ufeff') {
      i++;
      continue;
    }
    if (c === '/' && d === '/') {
      while (i < n && source[i] !== '\n') i++;
      continue;
    }
    if (c === '/' && d === '*') {
      const e = source.indexOf('*/', i + 2);
      if (e < 0) throw scanError(`unterminated comment at offset ${i}`);
      i = e + 2;
      continue;
    }
    const start = i;
    if (c === '#' && i === 0 && d === '!') {
      while (i < n && source[i] !== '\n') i++;
      continue;
    }
    if (isIdStart(c) || c === '#' || c === '\\') {
      i++;
      while (i < n && isIdPart(source[i]!)) i++;
      push('name', start, i);
      continue;
    }
    if ((c >= '0' && c <= '9') || (c === '.' && d !== undefined && d >= '0' && d <= '9')) {
      if (c === '0' && d !== undefined && /[xXoObB]/.test(d)) {
        i += 2;
        while (i < n && /[0-9a-fA-F_]/.test(source[i]!)) i++;
      } else {
        while (i < n && /[0-9_]/.test(source[i]!)) i++;
        if (source[i] === '.') {
          i++;
          while (i < n && /[0-9_]/.test(source[i]!)) i++;
        }
        if (source[i] === 'e' || source[i] === 'E') {
          i++;
          if (source[i] === '+' || source[i] === '-') i++;
          while (i < n && /[0-9_]/.test(source[i]!)) i++;
        }
      }
      if (source[i] === 'n') i++;
      push('num', start, i);
      continue;
    }
    if (c === '"' || c === "'") {
      i++;
      while (i < n && source[i] !== c) {
        if (source[i] === '\\') i++;
        else if (source[i] === '\n') throw scanError(`unterminated string at offset ${start}`);
        i++;
      }
      if (i >= n) throw scanError(`unterminated string at offset ${start}`);
      i++;
      push('str', start, i);
      continue;
    }
    if (c === '`') {
      i++;
      templatePart(start);
      continue;
    }
    if (c === '}' && templates.length && templates[templates.length - 1] === braces - 1) {
      templates.pop();
      braces--;
      i++;
      templatePart(start);
      continue;
    }
    if (c === '/' && regexAllowed()) {
      i++;
      let cls = false;
      while (i < n) {
        const r = source[i]!;
        if (r === '\\') i += 2;
        else if (r === '\n') throw scanError(`unterminated regular expression at offset ${start}`);
        else {
          if (r === '[') cls = true;
          else if (r === ']') cls = false;
          else if (r === '/' && !cls) break;
          i++;
        }
      }
      if (i >= n) throw scanError(`unterminated regular expression at offset ${start}`);
      i++;
      while (i < n && isIdPart(source[i]!)) i++;
      push('regex', start, i);
      continue;
    }
    let p = PUNCT.find((q) => source.startsWith(q, i));
    if (p === '?.' && source[i + 2] !== undefined && /[0-9]/.test(source[i + 2]!)) p = undefined;
    const len = p ? p.length : 1;
    if (c === '{') braces++;
    else if (c === '}') braces--;
    i += len;
    push('punct', start, i);
  }
  if (templates.length) throw scanError('unterminated template substitution');
  return tokens;
}
