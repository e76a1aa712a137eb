/** Lines of code (scripts/loc.ts): blank and comment-only lines do not count; code inside strings and templates does. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { countLoc } from '../../scripts/loc.js';

test('comments and blank lines do not count; a multi-line template counts each line; regexes are not comments', () => {
  const text = [
    '/** doc',
    ' * more */',
    '// a line comment',
    "import x from 'y'; // trailing comment",
    '',
    'const s = `a',
    '// inside a template, not a comment',
    'b`;',
    '/* block */ const r = /\\/\\//g;',
    'function f(): void {',
    '  /** inner doc */',
    '  return;',
    '}',
    '/*',
    '  const notCode = 1;',
    '*/',
    '',
  ].join('\n');
  assert.is(countLoc('a.ts', text), 8);
});

test('an empty file, and one of comments only, have no lines of code', () => {
  assert.is(countLoc('a.ts', ''), 0);
  assert.is(countLoc('a.ts', '// one\n/* two */\n\n'), 0);
});

test('JavaScript files are counted too', () => {
  assert.is(countLoc('a.js', "import { a } from './a.js';\n\n// c\nexport const b = a;\n"), 2);
});

test.run();
