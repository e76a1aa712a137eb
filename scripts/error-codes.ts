/**
 * Error codes against their documentation.
 *
 * The source side: every string literal that is a whole error code (`'ERR_DMA_ARG'`, `"ERR_X"`, or
 * a template literal without substitutions) in the project's non-test TypeScript, the unions that
 * declare them included, comments left out. Codes built at run time (`` `ERR_BLOCK_${kind}` ``)
 * cannot be checked against anything, so they are reported too.
 * The documentation side: every row of every Markdown table whose header is exactly
 * `| code | meaning | fix |`, its first cell a code in backticks.
 *
 * `checkErrorCodes(root)` returns what does not agree: codes in the source that no table
 * documents, documented codes the source no longer has, codes documented twice, rows with an empty
 * meaning or fix or the wrong shape, codes built at run time, codes that two declared code sets
 * (type unions, or frozen const objects of codes) both claim, and errors constructed without a code
 * of their own class in library code (`new DmaboxError(`, the base; `new Error(`, `new RangeError(`,
 * `new TypeError(`; bench/ and scripts/ may) or classes over the base without a closed code set
 * (`extends DmaboxError {`). test/common/error-codes.test.ts fails
 * on any of them; `node dist/scripts/error-codes.js` prints the same report (exit status 1 when
 * anything disagrees).
 */
import { readdirSync, readFileSync } from 'node:fs';
import { dirname, join, relative, sep } from 'node:path';
import { fileURLToPath } from 'node:url';

/** A whole error code. */
export const CODE = /^ERR_[A-Z0-9_]+$/;
/** The one header a code table has. */
export const TABLE_HEADER = '| code | meaning | fix |';

export interface Site {
  file: string;
  line: number;
}
export interface CodeSite extends Site {
  code: string;
}
export interface DocRow extends Site {
  code: string;
  meaning: string;
  fix: string;
}
export interface Problem extends Site {
  problem: string;
}
/** A type alias or const whose value names codes: `type DmaCode = 'ERR_DMA_ARG' | ...`. */
export interface CodeSet extends Site {
  name: string;
  codes: string[];
}

// ---- lexing TypeScript just enough: comments, strings, templates, regular expressions ----------

export interface Literal {
  value: string;
  start: number;
  line: number;
  template: boolean;
}
export interface Lexed {
  /** The text with comments blanked and the insides of strings, templates and regexes blanked (newlines kept). */
  masked: string;
  /** Every string literal, and every template literal without substitutions. */
  literals: Literal[];
  /** Template literals whose text before a `${` ends in `ERR_...`: a code built at run time. */
  dynamic: { text: string; line: number }[];
}

/** Keywords after which a `/` starts a regular expression, not a division. */
const REGEX_AFTER_WORD = new Set(['return', 'typeof', 'case', 'do', 'else', 'in', 'of', 'new', 'delete', 'void', 'throw', 'yield', 'await', 'instanceof']);

export function lex(text: string): Lexed {
  const out = text.split('');
  const literals: Literal[] = [];
  const dynamic: { text: string; line: number }[] = [];
  const blank = (from: number, to: number): void => {
    for (let k = from; k < to; k++) if (out[k] !== '\n') out[k] = ' ';
  };
  let line = 1;
  const lineAt: number[] = [];
  for (let k = 0; k < text.length; k++) {
    lineAt.push(line);
    if (text[k] === '\n') line++;
  }
  /** Brace depth inside each open `${`, innermost last. */
  const templates: number[] = [];
  let i = 0;
  let last = ''; // the last significant character or word in code
  const scanTemplate = (from: number): number => {
    // `from` is just after a backtick or a closing `}` of a substitution.
    let j = from;
    let chunk = '';
    while (j < text.length) {
      const c = text[j]!;
      if (c === '\\') {
        chunk += text.slice(j, j + 2);
        j += 2;
        continue;
      }
      if (c === '`') {
        blank(from, j);
        return j + 1;
      }
      if (c === '$' && text[j + 1] === '{') {
        if (/ERR_[A-Z0-9_]*$/.test(chunk)) dynamic.push({ text: `${chunk.slice(chunk.lastIndexOf('ERR_'))}\${`, line: lineAt[j]! });
        blank(from, j);
        templates.push(0);
        return -(j + 2); // back to code inside the substitution
      }
      chunk += c;
      j++;
    }
    blank(from, j);
    return j;
  };
  while (i < text.length) {
    const c = text[i]!;
    const next = text[i + 1];
    if (c === '/' && next === '/') {
      const end = text.indexOf('\n', i);
      const stop = end < 0 ? text.length : end;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === '/' && next === '*') {
      const end = text.indexOf('*/', i + 2);
      const stop = end < 0 ? text.length : end + 2;
      blank(i, stop);
      i = stop;
      continue;
    }
    if (c === "'" || c === '"') {
      let j = i + 1;
      let value = '';
      while (j < text.length && text[j] !== c && text[j] !== '\n') {
        if (text[j] === '\\') {
          value += text.slice(j, j + 2);
          j += 2;
        } else value += text[j++];
      }
      literals.push({ value, start: i, line: lineAt[i]!, template: false });
      blank(i + 1, j);
      i = j + 1;
      last = c;
      continue;
    }
    if (c === '`') {
      const closeOrSub = scanTemplate(i + 1);
      if (closeOrSub >= 0) {
        const raw = text.slice(i + 1, closeOrSub - 1);
        literals.push({ value: raw, start: i, line: lineAt[i]!, template: true });
        i = closeOrSub;
      } else i = -closeOrSub;
      last = '`';
      continue;
    }
    if (templates.length > 0 && c === '{') {
      templates[templates.length - 1]!++;
      i++;
      last = c;
      continue;
    }
    if (templates.length > 0 && c === '}') {
      if (templates[templates.length - 1] === 0) {
        templates.pop();
        const closeOrSub = scanTemplate(i + 1);
        i = closeOrSub >= 0 ? closeOrSub : -closeOrSub;
        last = '`';
        continue;
      }
      templates[templates.length - 1]!--;
      i++;
      last = c;
      continue;
    }
    if (c === '/') {
      const regex = last === '' || /[(,=:[!&|?{};+\-*%<>~^]/.test(last) || REGEX_AFTER_WORD.has(last);
      if (regex) {
        let j = i + 1;
        let inClass = false;
        while (j < text.length && text[j] !== '\n') {
          const r = text[j]!;
          if (r === '\\') {
            j += 2;
            continue;
          }
          if (r === '[') inClass = true;
          else if (r === ']') inClass = false;
          else if (r === '/' && !inClass) break;
          j++;
        }
        blank(i + 1, j);
        i = j + 1;
        while (i < text.length && /[a-z]/.test(text[i]!)) i++;
        last = ')';
        continue;
      }
    }
    if (/[A-Za-z_$0-9]/.test(c)) {
      let j = i;
      while (j < text.length && /[A-Za-z_$0-9]/.test(text[j]!)) j++;
      last = text.slice(i, j);
      i = j;
      continue;
    }
    if (!/\s/.test(c)) last = c;
    i++;
  }
  return { masked: out.join(''), literals, dynamic };
}

// ---- the source side ------------------------------------------------------------------------------

export interface SourceScan {
  codes: CodeSite[];
  dynamic: Problem[];
  sets: CodeSet[];
  /**
   * `new DmaboxError(`, `new Error(`, `new RangeError(`, `new TypeError(` outside comments and
   * strings, and classes over the base without their closed code set (`extends DmaboxError {`).
   */
  bare: Problem[];
}

const BARE = /\bnew\s+(DmaboxError|Error|RangeError|TypeError)\s*[<(]/g;
/** `extends DmaboxError` with no type argument, or with `<string>`: any code would do. */
const OPEN_CLASS = /\bextends\s+DmaboxError\b(?!\s*<(?!\s*string\s*>))/g;

/** The codes one source file can produce, the code sets it declares, and any codes built at run time. */
export function scanSource(text: string, file: string): SourceScan {
  const { masked, literals, dynamic } = lex(text);
  const codes = literals.filter((l) => CODE.test(l.value)).map((l) => ({ code: l.value, file, line: l.line }));
  const sets: CodeSet[] = [];
  // Code sets are found in the masked text, so no comment or string content can fool the search:
  // `type X = 'ERR_A' | 'ERR_B' | OtherCode;` (a union of code literals and other unions only), and
  // `const X = Object.freeze({ A: 'ERR_A', ... } as const);` (an object whose every string is a code).
  const decl = /\b(type|const)\s+([A-Za-z_$][\w$]*)\s*(?::[^=]*)?=/g;
  for (let m = decl.exec(masked); m; m = decl.exec(masked)) {
    const from = m.index + m[0].length;
    let depth = 0;
    let end = from;
    for (; end < masked.length; end++) {
      const ch = masked[end]!;
      if (ch === '(' || ch === '{' || ch === '[') depth++;
      else if (ch === ')' || ch === '}' || ch === ']') depth--;
      if (depth < 0 || (depth === 0 && ch === ';')) break;
      if (depth === 0 && ch === '\n' && /^\s*(export|import|type|const|let|function|class|interface)\b/.test(masked.slice(end + 1, end + 40))) break;
    }
    const rhs = masked.slice(from, end);
    const inside = literals.filter((l) => l.start >= from && l.start < end);
    if (inside.length === 0 || !inside.every((l) => CODE.test(l.value))) continue;
    const isSet = m[1] === 'type' ? /^[\s|'"`\w$]*$/.test(rhs) : /^\s*Object\.freeze\(\s*\{/.test(rhs) || /^\s*\{[\s\S]*\}\s*as\s+const\s*$/.test(rhs);
    if (isSet) sets.push({ name: m[2]!, codes: [...new Set(inside.map((l) => l.value))], file, line: lineOf(text, m.index) });
  }
  const bare: Problem[] = [];
  for (let m = BARE.exec(masked); m; m = BARE.exec(masked)) {
    bare.push({
      file,
      line: lineOf(text, m.index),
      problem: m[1] === 'DmaboxError' ? 'new DmaboxError(: the base class, with a code no class owns' : `new ${m[1]}(: an error without a code`,
    });
  }
  for (let m = OPEN_CLASS.exec(masked); m; m = OPEN_CLASS.exec(masked)) {
    bare.push({ file, line: lineOf(text, m.index), problem: 'extends DmaboxError: a class without its closed code set (extends DmaboxError<AreaCode>)' });
  }
  return {
    codes,
    dynamic: dynamic.map((d) => ({ file, line: d.line, problem: `a code built at run time (\`${d.text}...\`): write each code as a literal, in a union` })),
    sets,
    bare,
  };
}

function lineOf(text: string, offset: number): number {
  let n = 1;
  for (let k = 0; k < offset; k++) if (text[k] === '\n') n++;
  return n;
}

// ---- the documentation side -------------------------------------------------------------------

const SEPARATOR = /^\|\s*:?-{3,}:?\s*\|\s*:?-{3,}:?\s*\|\s*:?-{3,}:?\s*\|$/;

/** Split a Markdown table row into its cells (a `\|` is part of a cell). */
export function cells(row: string): string[] {
  const inner = row.trim().replace(/^\|/, '').replace(/\|$/, '');
  const out: string[] = [];
  let cur = '';
  for (let k = 0; k < inner.length; k++) {
    if (inner[k] === '\\' && inner[k + 1] === '|') {
      cur += '|';
      k++;
      continue;
    }
    if (inner[k] === '|') {
      out.push(cur.trim());
      cur = '';
      continue;
    }
    cur += inner[k];
  }
  out.push(cur.trim());
  return out;
}

/** The rows of every `| code | meaning | fix |` table of one Markdown file, and what is wrong with any. */
export function parseCodeTables(text: string, file: string): { rows: DocRow[]; problems: Problem[] } {
  const lines = text.split('\n');
  const rows: DocRow[] = [];
  const problems: Problem[] = [];
  let fenced = false;
  for (let n = 0; n < lines.length; n++) {
    const t = lines[n]!.trim();
    if (t.startsWith('```')) {
      fenced = !fenced;
      continue;
    }
    if (fenced || t !== TABLE_HEADER) continue;
    if (!SEPARATOR.test((lines[n + 1] ?? '').trim())) {
      problems.push({ file, line: n + 2, problem: 'a code table header not followed by its |---|---|---| line' });
      continue;
    }
    for (n += 2; n < lines.length && lines[n]!.trim().startsWith('|'); n++) {
      const at = { file, line: n + 1 };
      const c = cells(lines[n]!);
      if (c.length !== 3) {
        problems.push({ ...at, problem: `${c.length} cells, a code row has 3 (code, meaning, fix); escape a | inside a cell as \\|` });
        continue;
      }
      const code = /^`(ERR_[A-Z0-9_]+)`$/.exec(c[0]!);
      if (!code) {
        problems.push({ ...at, problem: `first cell ${JSON.stringify(c[0])} is not one code in backticks (\`ERR_...\`)` });
        continue;
      }
      if (!c[1]) problems.push({ ...at, problem: `${code[1]}: empty meaning` });
      if (!c[2]) problems.push({ ...at, problem: `${code[1]}: empty fix (write "-" only when a user can do nothing, and say why in the meaning)` });
      rows.push({ ...at, code: code[1]!, meaning: c[1]!, fix: c[2]! });
    }
    n--;
  }
  return { rows, problems };
}

// ---- the repository -----------------------------------------------------------------------------

/** Folders never searched: dependencies, builds, caches, VCS. */
const SKIP_DIRS = new Set(['node_modules', 'dist', '.git', '.cache']);

function walk(root: string, dir: string, keep: (rel: string) => boolean, out: string[]): void {
  for (const e of readdirSync(dir, { withFileTypes: true })) {
    if (e.name.startsWith('.') || SKIP_DIRS.has(e.name)) continue;
    const p = join(dir, e.name);
    if (e.isDirectory()) walk(root, p, keep, out);
    else if (e.isFile()) {
      const rel = relative(root, p).split(sep).join('/');
      if (keep(rel)) out.push(rel);
    }
  }
}

/** Non-test TypeScript of the repository (test/ left out; bench/ and scripts/ in), sorted. */
export function sourceFiles(root: string): string[] {
  const out: string[] = [];
  walk(root, root, (rel) => rel.endsWith('.ts') && !rel.endsWith('.d.ts') && !rel.startsWith('test/'), out);
  return out.sort();
}

/** Every Markdown file of the repository, sorted. */
export function markdownFiles(root: string): string[] {
  const out: string[] = [];
  walk(root, root, (rel) => rel.endsWith('.md'), out);
  return out.sort();
}

export interface ErrorCodeReport {
  /** Each code of the source with every place it appears. */
  source: Map<string, CodeSite[]>;
  rows: DocRow[];
  tables: number;
  /** In the source, in no table: the first place each appears. */
  undocumented: CodeSite[];
  /** In a table, not in the source. */
  stale: DocRow[];
  /** Documented more than once: every row of each. */
  duplicated: DocRow[][];
  /** Rows of the wrong shape, empty cells, headers without their separator. */
  malformed: Problem[];
  /** Codes built at run time. */
  dynamic: Problem[];
  /** Codes that two code sets both declare. */
  shared: { code: string; sets: CodeSet[] }[];
  /** Library code constructing the base class or an error without a code, or declaring a class with an open code set (bench/ and scripts/ left out). */
  bare: Problem[];
}

/** Folders whose code may throw plain errors: tools, not the library. */
const MAY_THROW_PLAIN = /^(bench|scripts)\//;

export function checkErrorCodes(root: string): ErrorCodeReport {
  const source = new Map<string, CodeSite[]>();
  const dynamic: Problem[] = [];
  const sets: CodeSet[] = [];
  const bare: Problem[] = [];
  for (const file of sourceFiles(root)) {
    const scan = scanSource(readFileSync(join(root, file), 'utf8'), file);
    for (const c of scan.codes) source.set(c.code, [...(source.get(c.code) ?? []), c]);
    dynamic.push(...scan.dynamic);
    sets.push(...scan.sets);
    if (!MAY_THROW_PLAIN.test(file)) bare.push(...scan.bare);
  }
  const rows: DocRow[] = [];
  const malformed: Problem[] = [];
  let tables = 0;
  for (const file of markdownFiles(root)) {
    const text = readFileSync(join(root, file), 'utf8');
    tables += text.split('\n').filter((l) => l.trim() === TABLE_HEADER).length;
    const t = parseCodeTables(text, file);
    rows.push(...t.rows);
    malformed.push(...t.problems);
  }
  const documented = new Map<string, DocRow[]>();
  for (const r of rows) documented.set(r.code, [...(documented.get(r.code) ?? []), r]);
  const bySet = new Map<string, CodeSet[]>();
  for (const s of sets) for (const c of s.codes) bySet.set(c, [...(bySet.get(c) ?? []), s]);
  // A set that only gathers others (`type SimCode = SimCoreCode | NvmeModelCode`) names no literal, so it is never counted twice.
  return {
    source,
    rows,
    tables,
    undocumented: [...source.entries()]
      .filter(([c]) => !documented.has(c))
      .map(([, sites]) => sites[0]!)
      .sort(byPlace),
    stale: rows.filter((r) => !source.has(r.code)),
    duplicated: [...documented.values()].filter((rs) => rs.length > 1),
    malformed,
    dynamic,
    shared: [...bySet.entries()].filter(([, s]) => s.length > 1).map(([code, s]) => ({ code, sets: s })),
    bare,
  };
}

const byPlace = (a: Site, b: Site): number => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line);
const at = (s: Site): string => `${s.file}:${s.line}`;

/** Undocumented codes as lines per folder: `  sandbox/manager: ERR_SANDBOX_X (device.ts:64), ...`. */
export function formatUndocumented(sites: readonly CodeSite[]): string {
  const byDir = new Map<string, CodeSite[]>();
  for (const s of sites) {
    const d = dirname(s.file);
    byDir.set(d, [...(byDir.get(d) ?? []), s]);
  }
  return [...byDir.entries()]
    .map(([d, ss]) => `  ${d}/ (${ss.length}): ${ss.map((s) => `${s.code} (${s.file.slice(d.length + 1)}:${s.line})`).join(', ')}`)
    .join('\n');
}

/** Bare constructions and open classes as lines per file: `  sandbox/container/dma.ts: new DmaboxError( at 41, 54; new Error( at 90`. */
export function formatBare(problems: readonly Problem[]): string {
  const byFile = new Map<string, Map<string, number[]>>();
  for (const p of problems) {
    const what = p.problem.slice(0, p.problem.indexOf(':'));
    const kinds = byFile.get(p.file) ?? new Map<string, number[]>();
    kinds.set(what, [...(kinds.get(what) ?? []), p.line]);
    byFile.set(p.file, kinds);
  }
  return [...byFile.entries()].map(([f, kinds]) => `  ${f}: ${[...kinds.entries()].map(([k, lines]) => `${k} at ${lines.join(', ')}`).join('; ')}`).join('\n');
}

/** Each disagreement kind as a titled block; the empty string when everything agrees. */
export function formatReport(r: ErrorCodeReport): string {
  const blocks: string[] = [];
  const block = (title: string, items: readonly string[]): void => {
    if (items.length > 0) blocks.push(`${title}: ${items.length}\n${items.join('\n')}`);
  };
  if (r.undocumented.length > 0) {
    blocks.push(`undocumented (in the source, in no \`${TABLE_HEADER}\` table): ${r.undocumented.length}\n${formatUndocumented(r.undocumented)}`);
  }
  block(
    'documented but no longer in the source',
    r.stale.map((d) => `  ${d.code} (${at(d)})`),
  );
  block(
    'documented more than once',
    r.duplicated.map((rs) => `  ${rs[0]!.code}: ${rs.map(at).join(', ')}`),
  );
  block(
    'malformed code table rows',
    r.malformed.map((p) => `  ${at(p)}: ${p.problem}`),
  );
  block(
    'codes built at run time',
    r.dynamic.map((p) => `  ${at(p)}: ${p.problem}`),
  );
  block(
    'codes declared by two code sets',
    r.shared.map((s) => `  ${s.code}: ${s.sets.map((x) => `${x.name} (${at(x)})`).join(', ')}`),
  );
  if (r.bare.length > 0)
    blocks.push(`errors without a code of their own class, and classes without a closed code set, in library code: ${r.bare.length}\n${formatBare(r.bare)}`);
  return blocks.join('\n\n');
}

function main(): void {
  const root = join(dirname(fileURLToPath(import.meta.url)), '..', '..');
  const r = checkErrorCodes(root);
  const text = formatReport(r);
  console.log(`error codes: ${r.source.size} in the source, ${r.rows.length} rows in ${r.tables} \`${TABLE_HEADER}\` tables`);
  console.log(text || 'every code is documented once, and every documented code exists');
  process.exitCode = text ? 1 : 0;
}

if (process.argv[1] && fileURLToPath(import.meta.url) === process.argv[1]) main();
