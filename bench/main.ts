/**
 * `npm run bench [-- NAME...]`: runs benchmarks (not tests). Each benchmark lives in its own module
 * under bench/ and exports `run(argv: string[]): Promise<void>`, printing what it measured and on
 * which machine (bench/machine.ts). With no name, every benchmark runs in turn.
 */
import { machineSummary } from './machine.js';

const benches: Record<string, () => Promise<{ run(argv: string[]): Promise<void> }>> = {
  // one line per benchmark: name: () => import('./name.js'),
  e1000e: () => import('./e1000e.js'),
  nvme: () => import('./nvme.js'),
  linkback: () => import('./linkback.js'),
  appliance: () => import('./appliance.js'),
  restart: () => import('./restart.js'),
  nic: () => import('./nic.js'),
  fuzz: () => import('./fuzz.js'),
};

async function main(argv: string[]): Promise<void> {
  const names = argv.filter((a) => !a.startsWith('-'));
  const unknown = names.filter((n) => !(n in benches));
  if (unknown.length) {
    console.error(`bench: unknown benchmark(s): ${unknown.join(', ')}; known: ${Object.keys(benches).join(', ') || '(none yet)'}`);
    process.exitCode = 2;
    return;
  }
  console.log(machineSummary());
  for (const name of names.length ? names : Object.keys(benches)) {
    console.log(`\n== ${name}`);
    await (await benches[name]!()).run(argv.filter((a) => a.startsWith('-')));
  }
}

void main(process.argv.slice(2));
