/** The driver container's entrypoint (run.ts does the work): spawned by the manager, never by hand. */
import { runContainer } from './run.js';

runContainer();
