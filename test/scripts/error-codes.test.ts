import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { cells, checkErrorCodes, formatReport, lex, parseCodeTables, scanSource } from '../../scripts/error-codes.js';

const codes = (src: string): string[] => scanSource(src, 'x.ts').codes.map((c) => c.code);

test('source: whole-code string literals count, in single, double and plain back quotes', () => {
  assert.equal(codes(`throw new E('ERR_A', 'x'); const b = "ERR_B"; const c = \`ERR_C\`;`), ['ERR_A', 'ERR_B', 'ERR_C']);
  assert.equal(codes(`const m = 'see ERR_A'; const n = 'NBD_REP_ERR_UNSUP'; const o = 'ERR_lower';`), []);
  assert.equal(scanSource(`\n\nx('ERR_LINE3');`, 'f.ts').codes, [{ code: 'ERR_LINE3', file: 'f.ts', line: 3 }]);
});

test('source: codes in comments do not count; comment markers inside strings are not comments', () => {
  assert.equal(codes(`// throw new E('ERR_GONE')\n/* 'ERR_GONE_TOO' */ const u = 'http://x'; f('ERR_REAL');`), ['ERR_REAL']);
  assert.equal(codes(`const s = '/* not a comment'; f('ERR_AFTER'); // 'ERR_NO'`), ['ERR_AFTER']);
  assert.equal(codes(`const s = 'it\\'s'; f('ERR_ESCAPED_QUOTE_BEFORE');`), ['ERR_ESCAPED_QUOTE_BEFORE']);
});

test('source: a regular expression is not a string, a division is not a regular expression', () => {
  assert.equal(codes(`const r = /'ERR_IN_REGEX'/; f('ERR_OUT');`), ['ERR_OUT']);
  assert.equal(codes(`const r = /[/']/g.test(s) ? 'ERR_CLASS' : 0;`), ['ERR_CLASS']);
  assert.equal(codes(`const half = total / 2; const q = a / b / c; f('ERR_DIV');`), ['ERR_DIV']);
  assert.equal(codes(`if (x) return /'ERR_R'/.test(y); f('ERR_AFTER_RETURN');`), ['ERR_AFTER_RETURN']);
});

test('source: template literals with substitutions, nested strings, braces and templates', () => {
  assert.equal(codes(`const m = \`\${f('ERR_INNER')} and \${ {a: 'ERR_OBJ'}.a } \${\`ERR_NESTED\`}\`; g('ERR_AFTER');`), [
    'ERR_INNER',
    'ERR_OBJ',
    'ERR_NESTED',
    'ERR_AFTER',
  ]);
  assert.equal(codes(`const m = \`a \${b} 'ERR_NOT_A_LITERAL' c\`; g('ERR_AFTER');`), ['ERR_AFTER']);
  const d = scanSource(`super(\`ERR_BLOCK_\${kind}\`, m);`, 'b.ts').dynamic;
  assert.equal(d.length, 1);
  assert.is(d[0]!.line, 1);
  assert.match(d[0]!.problem, /built at run time \(`ERR_BLOCK_\$\{/);
  assert.equal(scanSource(`const m = \`error \${code}: \${msg}\`;`, 'b.ts').dynamic, []);
});

test('source: code sets are literal unions and frozen objects of codes, nothing else', () => {
  const src = `
export type ACode =
  | 'ERR_A1'
  | 'ERR_A2';
export type Mixed = ACode | 'ERR_M1';
export type Sub = Extract<ACode, 'ERR_A1'>;
export const VCode = Object.freeze({
  /** 'ERR_IN_COMMENT' */
  ONE: 'ERR_V1',
} as const);
const FIX = Object.freeze({ a: 'not a code', b: 'ERR_V1' });
const bad = (m: string) => new E('ERR_A1', m);
const SKIP = new Set(['ERR_A2']);
const options = { code: 'ERR_A2' };
const Plain = { P: 'ERR_P1' } as const;
`;
  const sets = scanSource(src, 's.ts').sets.map((s) => `${s.name}@${s.line}: ${s.codes.join(' ')}`);
  assert.equal(sets, ['ACode@2: ERR_A1 ERR_A2', 'Mixed@5: ERR_M1', 'VCode@7: ERR_V1', 'Plain@15: ERR_P1']);
});

test('source: constructions of the base class and of code-less errors are found, outside comments and strings', () => {
  const src = `throw new DmaboxError('ERR_X', 'm');\n// throw new Error('in a comment')\nconst s = 'new RangeError(';\nreject(new Error(\`late\`));\nthrow new RangeError ('r'); throw new TypeError('t'); new DmaboxError<C>('ERR_Y', 'g');\nclass E extends DmaboxError<C> {} new MyError('ERR_Z', 'fine');\nclass O extends DmaboxError {}\nclass S extends DmaboxError<string> {}\nclass U extends DmaboxError<'ERR_U1' | 'ERR_U2'> {}`;
  assert.equal(
    scanSource(src, 'f.ts').bare.map((p) => `${p.line}: ${p.problem}`),
    [
      '1: new DmaboxError(: the base class, with a code no class owns',
      '4: new Error(: an error without a code',
      '5: new RangeError(: an error without a code',
      '5: new TypeError(: an error without a code',
      '5: new DmaboxError(: the base class, with a code no class owns',
      '7: extends DmaboxError: a class without its closed code set (extends DmaboxError<AreaCode>)',
      '8: extends DmaboxError: a class without its closed code set (extends DmaboxError<AreaCode>)',
    ],
  );
});

test('tables: rows of | code | meaning | fix | tables only, cells split on unescaped pipes', () => {
  assert.equal(cells('| `ERR_A` | a \\| b | `x` |'), ['`ERR_A`', 'a | b', '`x`']);
  const md = [
    '# t',
    '',
    '| code | meaning | fix |',
    '|---|---|---|',
    '| `ERR_A` | the a | do a |',
    '| `ERR_B` | nothing to do: the kernel decides | - |',
    '',
    '| code | class | meaning | fix |',
    '|---|---|---|---|',
    '| `ERR_OTHER` | C | m | f |',
    '```',
    '| code | meaning | fix |',
    '|---|---|---|',
    '| `ERR_FENCED` | m | f |',
    '```',
    '| code | meaning | fix |',
    '|:---|---|---:|',
    '| `ERR_C` | c | c |',
  ].join('\n');
  const t = parseCodeTables(md, 'R.md');
  assert.equal(t.problems, []);
  assert.equal(
    t.rows.map((r) => `${r.code}@${r.line}: ${r.meaning} / ${r.fix}`),
    ['ERR_A@5: the a / do a', 'ERR_B@6: nothing to do: the kernel decides / -', 'ERR_C@18: c / c'],
  );
});

test('tables: empty cells, wrong shapes and a missing separator are problems with their line', () => {
  const md = [
    '| code | meaning | fix |',
    '|---|---|---|',
    '| `ERR_A` |  | do a |',
    '| `ERR_B` | b |  |',
    '| `ERR_C` | c |',
    '| ERR_D | d | d |',
    '| `ERR_E` `ERR_F` | e | e |',
    '',
    '| code | meaning | fix |',
    '| `ERR_G` | g | g |',
  ].join('\n');
  const t = parseCodeTables(md, 'R.md');
  assert.equal(
    t.problems.map((p) => `${p.line}: ${p.problem}`),
    [
      '3: ERR_A: empty meaning',
      '4: ERR_B: empty fix (write "-" only when a user can do nothing, and say why in the meaning)',
      '5: 2 cells, a code row has 3 (code, meaning, fix); escape a | inside a cell as \\|',
      '6: first cell "ERR_D" is not one code in backticks (`ERR_...`)',
      '7: first cell "`ERR_E` `ERR_F`" is not one code in backticks (`ERR_...`)',
      '10: a code table header not followed by its |---|---|---| line',
    ],
  );
  assert.equal(
    t.rows.map((r) => r.code),
    ['ERR_A', 'ERR_B'],
  );
});

test('the repository check: undocumented, stale, twice documented, run-time codes and shared sets; tests, builds and dependencies ignored', () => {
  const root = mkdtempSync(join(tmpdir(), 'dmabox-codes-'));
  const put = (rel: string, text: string): void => {
    mkdirSync(dirname(join(root, rel)), { recursive: true });
    writeFileSync(join(root, rel), text);
  };
  try {
    put('a/errors.ts', `export type ACode = 'ERR_A_ONE' | 'ERR_A_TWO' | 'ERR_SHARED';\n`);
    put('b/errors.ts', `export type BCode = 'ERR_B_ONE' | 'ERR_SHARED';\nconst c = \`ERR_B_\${k}\`;\n`);
    put('a/README.md', '| code | meaning | fix |\n|---|---|---|\n| `ERR_A_ONE` | one | fix one |\n| `ERR_A_GONE` | gone | - |\n| `ERR_SHARED` | s | s |\n');
    put('b/README.md', '| code | meaning | fix |\n|---|---|---|\n| `ERR_B_ONE` | one | fix |\n| `ERR_A_ONE` | again | again |\n| `ERR_SHARED` | s |  |\n');
    put('test/a.test.ts', `assert.is(code, 'ERR_ONLY_IN_TESTS'); throw new Error('tests may');\n`);
    put('bench/b.ts', `throw new Error('bench may');\n`);
    put('scripts/s.ts', `throw new RangeError('scripts may');\n`);
    put('a/lib.ts', `export const f = () => { throw new RangeError('no code'); };\n`);
    put('dist/a/errors.js', `const x = 'ERR_ONLY_IN_BUILD';\n`);
    put('node_modules/p/index.ts', `const x = 'ERR_ONLY_IN_DEPS';\n`);
    put('node_modules/p/README.md', '| code | meaning | fix |\n|---|---|---|\n| `ERR_DEP` | d | d |\n');
    const r = checkErrorCodes(root);
    assert.equal([...r.source.keys()].sort(), ['ERR_A_ONE', 'ERR_A_TWO', 'ERR_B_ONE', 'ERR_SHARED']);
    assert.equal(
      r.undocumented.map((s) => `${s.code} ${s.file}:${s.line}`),
      ['ERR_A_TWO a/errors.ts:1'],
    );
    assert.equal(
      r.stale.map((d) => `${d.code} ${d.file}:${d.line}`),
      ['ERR_A_GONE a/README.md:4'],
    );
    assert.equal(
      r.duplicated.map((rs) => rs.map((d) => `${d.code} ${d.file}:${d.line}`)),
      [
        ['ERR_A_ONE a/README.md:3', 'ERR_A_ONE b/README.md:4'],
        ['ERR_SHARED a/README.md:5', 'ERR_SHARED b/README.md:5'],
      ],
    );
    assert.equal(
      r.malformed.map((p) => `${p.file}:${p.line}`),
      ['b/README.md:5'],
    );
    assert.equal(
      r.dynamic.map((p) => `${p.file}:${p.line}`),
      ['b/errors.ts:2'],
    );
    assert.equal(
      r.shared.map((s) => `${s.code}: ${s.sets.map((x) => x.name).join(', ')}`),
      ['ERR_SHARED: ACode, BCode'],
    );
    assert.equal(
      r.bare.map((p) => `${p.file}:${p.line}`),
      ['a/lib.ts:1'],
    );
    assert.is(r.tables, 2);
    const text = formatReport(r);
    assert.match(text, /^undocumented \(in the source, in no `\| code \| meaning \| fix \|` table\): 1\n {2}a\/ \(1\): ERR_A_TWO \(errors\.ts:1\)/);
    assert.match(text, /documented but no longer in the source: 1\n {2}ERR_A_GONE \(a\/README\.md:4\)/);
    assert.match(text, /codes declared by two code sets: 1\n {2}ERR_SHARED: ACode \(a\/errors\.ts:1\), BCode \(b\/errors\.ts:1\)/);
    assert.match(
      text,
      /errors without a code of their own class, and classes without a closed code set, in library code: 1\n {2}a\/lib\.ts: new RangeError\( at 1$/,
    );
    put('a/README.md', '| code | meaning | fix |\n|---|---|---|\n| `ERR_A_ONE` | one | fix one |\n| `ERR_A_TWO` | two | fix two |\n| `ERR_SHARED` | s | s |\n');
    put('b/README.md', '| code | meaning | fix |\n|---|---|---|\n| `ERR_B_ONE` | one | fix |\n');
    put('b/errors.ts', `export type BCode = 'ERR_B_ONE';\n`);
    put('a/lib.ts', `export const f = () => { throw new AError('ERR_A_ONE', 'coded'); };\n`);
    assert.is(formatReport(checkErrorCodes(root)), '');
  } finally {
    rmSync(root, { recursive: true, force: true });
  }
});

test("lex keeps the text's length and lines, blanking comments and string contents", () => {
  const src = `a('ERR_X'); // c\n/* d\n e */ b(\`t \${1} u\`)`;
  const l = lex(src);
  assert.is(l.masked.length, src.length);
  assert.is(l.masked.split('\n').length, 3);
  assert.is(l.masked, `a('     ');     \n    \n      b(\`  \${1}  \`)`);
});

test.run();
