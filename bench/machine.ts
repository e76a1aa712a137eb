import { cpus, totalmem, release } from 'node:os';

/** One line naming the machine a figure was measured on; every benchmark prints it first. */
export function machineSummary(): string {
  const c = cpus();
  return `machine: ${c.length} x ${c[0]?.model ?? 'unknown cpu'}, ${(totalmem() / 2 ** 30).toFixed(1)} GiB, Linux ${release()}, node ${process.version}`;
}
