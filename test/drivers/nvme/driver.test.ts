import { nvmeDriverSuite } from './suite.js';
import { simTarget } from './sim-target.js';

// The same suite as in the lab (test/lab/nvme/driver.test.ts), on the simulator: once with the
// model working after each doorbell batch, once inside the doorbell write, with 4 KiB blocks.
nvmeDriverSuite(simTarget('deferred'));
nvmeDriverSuite(simTarget('sync', { namespaces: [{ blocks: 4096, blockSize: 4096 }] }));
