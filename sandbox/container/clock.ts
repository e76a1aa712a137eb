/**
 * The clock a driver gets in a container: monotonic time, sleeps that let the event loop turn, and
 * `idle()`, which gives the CPU away when a poll found nothing (sched_yield). A container shares
 * the machine's cores with its manager, which polls too (sandbox/abi/hybrid-poll.ts): when the
 * scheduler puts both on one CPU, each would otherwise spin a whole time slice waiting for the
 * other (measured on 2 cores: about 3k IOPS over NBD instead of 50k; with the yield, 30k-40k).
 */
import type { Sys } from 'linux-sys';
import type { Clock } from '../../drivers/contract/platform.js';

export function containerClock(sys: Sys): Clock {
  return {
    now: () => performance.now(),
    sleep: (ms: number) =>
      new Promise<void>((resolve) => {
        if (ms > 0) setTimeout(resolve, ms);
        else setImmediate(resolve);
      }),
    idle: () => sys.schedYield(),
  };
}
