/**
 * A killed mutant must stop running. In a container the kernel sees to that; in the runner's
 * process a killed incarnation's timers go on, and a mutant (unlike the driver it came from) may
 * spin on its rings in memory without a platform call that would fail. So a mutant's clock throws
 * ERR_INJECTED_KILLED once its incarnation is dead: every polling loop and scheduled tick of the
 * driver reads the clock, and ends there (the runner drops InjectErrors that escape); so does its
 * log (a zombie reporting what it reads from a ring it no longer owns). A zombie that spins on
 * memory alone, rescheduling itself without a clock or a log, still runs: in-process mutation
 * cannot stop it (campaigns/README.md says so).
 */
import type { Platform } from '../../drivers/contract/platform.js';
import { InjectError } from '../inject/errors.js';

function checker(dead: () => boolean): () => void {
  return () => {
    if (dead()) throw new InjectError('ERR_INJECTED_KILLED', 'this driver incarnation is dead: its clock and log stopped');
  };
}

/** `log` for a mutant's context: throws once its incarnation is dead. */
export function mortalLog(log: (level: string, text: string) => void, dead: () => boolean): (level: string, text: string) => void {
  const check = checker(dead);
  return (level, text) => (check(), log(level, text));
}

export function mortal(platform: Platform, dead: () => boolean): Platform {
  const inner = platform.clock;
  const check = checker(dead);
  return {
    ...platform,
    clock: {
      now: () => (check(), inner.now()),
      sleep: (ms: number) => (check(), inner.sleep(ms)),
      idle: inner.idle ? () => (check(), inner.idle!()) : undefined,
    },
  };
}
