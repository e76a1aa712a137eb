/**
 * The closed code sets of the NVMe driver, the driver kit and the simulator against their
 * documentation: every code has one row in its folder's README table (`| code | meaning | fix |`,
 * meaning and fix filled in), and every `ERR_` string in those folders' sources is in its set.
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { existsSync, readdirSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { NVME_ERROR_CODES } from '../../../drivers/nvme/errors.js';
import { KIT_ERROR_CODES } from '../../../drivers/kit/errors.js';

/** The project root: the nearest folder above this file with a package.json naming dmabox. */
function root(): string {
  let dir = dirname(fileURLToPath(import.meta.url));
  for (;;) {
    const pkg = join(dir, 'package.json');
    if (existsSync(pkg) && JSON.parse(readFileSync(pkg, 'utf8')).name === 'dmabox') return dir;
    const up = dirname(dir);
    if (up === dir) throw new Error('project root not found above ' + fileURLToPath(import.meta.url));
    dir = up;
  }
}

const ROOT = root();

/** The rows of a README's `| code | meaning | fix |` table: code -> [meaning, fix]. */
function table(readme: string): Map<string, [string, string]> {
  const text = readFileSync(join(ROOT, readme), 'utf8');
  const lines = text.split('\n');
  const start = lines.findIndex((l) => l.trim() === '| code | meaning | fix |');
  assert.ok(start >= 0, `${readme} has a | code | meaning | fix | table`);
  const rows = new Map<string, [string, string]>();
  for (const line of lines.slice(start + 2)) {
    if (!line.startsWith('|')) break;
    const cells = line.split('|').slice(1, -1).map((c) => c.trim());
    const code = /^`(ERR_[A-Z0-9_]+)`$/.exec(cells[0] ?? '')?.[1];
    assert.ok(code, `${readme}: a row without a code in backticks: ${line}`);
    assert.not.ok(rows.has(code!), `${readme}: ${code} has two rows`);
    rows.set(code!, [cells[1] ?? '', cells[2] ?? '']);
  }
  return rows;
}

/** Every `'ERR_...'` literal in the .ts files below `dir`. */
function codesIn(dir: string): Set<string> {
  const out = new Set<string>();
  const walk = (d: string): void => {
    for (const e of readdirSync(join(ROOT, d), { withFileTypes: true })) {
      const rel = join(d, e.name);
      if (e.isDirectory()) walk(rel);
      else if (e.name.endsWith('.ts')) for (const m of readFileSync(join(ROOT, rel), 'utf8').matchAll(/'(ERR_[A-Z0-9_]+)'/g)) out.add(m[1]!);
    }
  };
  walk(dir);
  return out;
}

function documented(readme: string, codes: readonly string[]): void {
  const rows = table(readme);
  for (const code of codes) {
    const row = rows.get(code);
    assert.ok(row, `${code} has no row in ${readme}`);
    assert.ok(row![0].length > 10 && row![1].length > 10, `${code} in ${readme}: meaning and fix are filled in`);
  }
  assert.equal([...rows.keys()].sort(), [...codes].sort(), `${readme} documents exactly its codes`);
}

test('the NVMe driver: NVME_ERROR_CODES in drivers/nvme/README.md; no other code in drivers/nvme', () => {
  documented('drivers/nvme/README.md', NVME_ERROR_CODES);
  for (const c of codesIn('drivers/nvme')) assert.ok((NVME_ERROR_CODES as readonly string[]).includes(c), `drivers/nvme uses ${c}, outside its set`);
});

test('the driver kit: KIT_ERROR_CODES in drivers/kit/README.md; no other code in drivers/kit', () => {
  documented('drivers/kit/README.md', KIT_ERROR_CODES);
  for (const c of codesIn('drivers/kit')) assert.ok((KIT_ERROR_CODES as readonly string[]).includes(c), `drivers/kit uses ${c}, outside its set`);
});

test('the simulator: SimError\'s union in sim/README.md; sim/nvme throws only SimError codes', () => {
  const union = [...readFileSync(join(ROOT, 'sim/errors.ts'), 'utf8').matchAll(/\| '(ERR_SIM_[A-Z0-9_]+)'/g)].map((m) => m[1]!);
  assert.ok(union.includes('ERR_SIM_ARG') && union.includes('ERR_SIM_UNSUPPORTED'), `the union as read: ${union.join(', ')}`);
  documented('sim/README.md', union);
  for (const c of codesIn('sim/nvme')) assert.ok(union.includes(c), `sim/nvme uses ${c}, outside SimError's codes`);
});

test.run();
