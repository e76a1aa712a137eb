/**
 * The driver container's entrypoint (run.ts does the work): spawned by the manager, never by hand.
 * With the argument `spare` it is a spare (sandbox/abi/handover.ts): its modules loaded and warmed
 * up (warm.ts), it waits for its fds, then runs as any container.
 */
import { defaultSys } from 'linux-sys';
import { HANDOVER_EXIT, receiveHandover, SPARE_ARG } from '../abi/handover.js';
import { runContainer } from './run.js';
import { warmUp } from './warm.js';

if (process.argv[2] === SPARE_ARG) {
  try {
    warmUp();
    receiveHandover(defaultSys());
  } catch (e) {
    process.stderr.write(`dmabox spare container: ${(e as Error).message}\n`);
    process.exit(HANDOVER_EXIT);
  }
}
runContainer();
