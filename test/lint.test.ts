/**
 * The lint configuration (eslint.config.js) does what the README says: plain Errors and the bare
 * DmaboxError are refused in library code and allowed in tests, benchmarks and scripts, and the
 * promise rules are on. Linted from text (no type information here, so the type-aware rules are
 * checked to be configured, not run: `npm run lint` runs them over the tree).
 */
import { ESLint } from 'eslint';
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { REPO_ROOT } from '../scripts/import-graph.js';

const eslint = new ESLint({
  cwd: REPO_ROOT,
  overrideConfig: {
    files: ['**/*.ts'],
    languageOptions: { parserOptions: { project: null, projectService: false } },
    rules: { '@typescript-eslint/no-floating-promises': 'off', '@typescript-eslint/no-misused-promises': 'off', '@typescript-eslint/await-thenable': 'off' },
  },
});

async function rules(filePath: string, code: string): Promise<string[]> {
  const [result] = await eslint.lintText(code, { filePath });
  return result!.messages.map((m) => `${m.ruleId ?? 'parse'}: ${m.message}`);
}

const THROWS = `
import { DmaboxError } from '../common/errors.js';
export function f(n: number): void {
  if (n < 0) throw new RangeError('negative');
  if (n > 9) throw new DmaboxError('ERR_X', 'too big');
  if (n === 5) throw Error('five');
  throw new TypeError('no');
}
`;

test('library code: no new Error/RangeError/TypeError, no Error() call, no bare DmaboxError', async () => {
  for (const file of ['dma/probe.ts', 'drivers/nvme/probe.ts', 'sandbox/manager/probe.ts', 'examples/ring/driver.ts', 'sys/src/probe.ts']) {
    const found = await rules(file, THROWS);
    assert.is(found.length, 4, `${file}: ${found.join('\n')}`);
    assert.ok(
      found.every((m) => m.startsWith('no-restricted-syntax: ')),
      found.join('\n'),
    );
    assert.ok(
      found.some((m) => m.includes('not RangeError')) &&
        found.some((m) => m.includes('not the base class')) &&
        found.some((m) => m.includes('called without new')),
    );
  }
});

test("tests, benchmarks, scripts and examples' tests may throw plain errors", async () => {
  for (const file of ['test/dma/probe.test.ts', 'bench/probe.ts', 'scripts/probe.ts', 'examples/ring/test/ring.test.ts', 'examples/ring/ring.test.ts']) {
    assert.equal(await rules(file, THROWS), [], file);
  }
});

test('the type-aware promise rules are errors for every TypeScript file, with type information from tsconfig.eslint.json', async () => {
  const plain = new ESLint({ cwd: REPO_ROOT });
  for (const file of ['dma/window.ts', 'test/architecture.test.ts']) {
    const config = (await plain.calculateConfigForFile(file)) as unknown as {
      rules: Record<string, unknown>;
      languageOptions: { parserOptions: { project?: string } };
    };
    for (const rule of ['@typescript-eslint/no-floating-promises', '@typescript-eslint/no-misused-promises', '@typescript-eslint/await-thenable']) {
      assert.equal(config.rules[rule], [2], `${file}: ${rule}`);
    }
    assert.is(config.languageOptions.parserOptions.project, './tsconfig.eslint.json');
  }
});

test.run();
