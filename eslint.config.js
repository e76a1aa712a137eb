// ESLint (flat config): typescript-eslint's recommended rules, the type-aware rules that catch
// promise bugs, and the project's error rule. Type information comes from tsconfig.eslint.json
// through the TypeScript 6 API (the `typescript` dependency is @typescript/typescript6; the build's
// `tsc` is TypeScript 7, which has no JavaScript API).
import js from '@eslint/js';
import { defineConfig, globalIgnores } from 'eslint/config';
import tseslint from 'typescript-eslint';

/** Code that may throw plain Errors: tests, benchmarks, scripts, and the tests of examples. */
const NOT_LIBRARY = ['test/**', 'bench/**', 'scripts/**', 'examples/**/test/**', 'examples/**/*.test.ts'];

/** Library code throws its area's error class (common/errors.ts: a DmaboxError<Code> subclass with a closed set of codes). */
const AREA_ERROR = 'library code throws the error class of its area (a DmaboxError<Code> subclass with a code and a fix)';
const PLAIN_ERRORS = ['Error', 'RangeError', 'TypeError'];

export default defineConfig([
  globalIgnores(['**/dist/', 'coverage/', '.cache/', 'node_modules/']),
  js.configs.recommended,
  tseslint.configs.recommended,
  {
    files: ['**/*.ts'],
    languageOptions: {
      parserOptions: { project: './tsconfig.eslint.json', tsconfigRootDir: import.meta.dirname },
    },
    rules: {
      '@typescript-eslint/no-floating-promises': 'error',
      '@typescript-eslint/no-misused-promises': 'error',
      '@typescript-eslint/await-thenable': 'error',
      // A parameter or binding a signature needs but the body does not uses a leading underscore.
      '@typescript-eslint/no-unused-vars': [
        'error',
        { argsIgnorePattern: '^_', varsIgnorePattern: '^_', caughtErrorsIgnorePattern: '^_', destructuredArrayIgnorePattern: '^_' },
      ],
    },
  },
  {
    files: ['**/*.ts'],
    ignores: NOT_LIBRARY,
    rules: {
      'no-restricted-syntax': [
        'error',
        ...PLAIN_ERRORS.flatMap((name) => [
          { selector: `NewExpression[callee.name='${name}']`, message: `${AREA_ERROR}, not ${name}` },
          { selector: `CallExpression[callee.name='${name}']`, message: `${AREA_ERROR}, not ${name} (called without new, it still makes a plain ${name})` },
        ]),
        {
          selector: "NewExpression[callee.name='DmaboxError']",
          message: 'construct the error class of this area (a DmaboxError<Code> subclass with its closed code set), not the base class',
        },
      ],
    },
  },
  {
    files: ['**/*.js'],
    languageOptions: { globals: { process: 'readonly', console: 'readonly' } },
  },
]);
