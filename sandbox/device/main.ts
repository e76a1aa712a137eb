/**
 * The device process's entrypoint (run.ts does the work): spawned by the manager, never by hand.
 * With the argument `spare` it is a spare (sandbox/abi/handover.ts): its modules loaded and its
 * start-up code compiled (warm.ts), it waits for its fds, then runs as any device process.
 */
import { defaultSys } from 'linux-sys';
import { HANDOVER_EXIT, receiveHandover, SPARE_ARG } from '../abi/handover.js';
import { runDevice } from './run.js';
import { reservedSizeFromEnv } from './store-reservation.js';
import { warmUp } from './warm.js';

if (process.argv[2] === SPARE_ARG) {
  try {
    const sys = defaultSys();
    warmUp(sys, reservedSizeFromEnv(process.env));
    receiveHandover(sys);
  } catch (e) {
    process.stderr.write(`dmabox spare device process: ${(e as Error).message}\n`);
    process.exit(HANDOVER_EXIT);
  }
}
runDevice();
