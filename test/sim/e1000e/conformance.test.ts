/**
 * The conformance suite (test/drivers/e1000e/conformance.ts) on the model; the lab runs the same
 * suite on QEMU's e1000e (test/lab/e1000e/conformance.test.ts).
 */
import { conformanceSuite } from '../../drivers/e1000e/conformance.js';
import { single, MAC_A } from '../../drivers/e1000e/harness.js';

conformanceSuite('82574L conformance: the simulator model', async () => {
  const { p } = single('loopback');
  return { platform: p, mac: MAC_A, done: () => p.close() };
}).run();
