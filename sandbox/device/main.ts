/** The device process's entrypoint (run.ts does the work): spawned by the manager, never by hand. */
import { runDevice } from './run.js';

runDevice();
