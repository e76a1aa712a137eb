/**
 * The conformance suite (test/drivers/e1000e/conformance.ts) on QEMU's e1000e through VFIO, in the
 * lab guest: the same register behaviour the simulator's model is tested for.
 */
import { conformanceSuite } from '../../drivers/e1000e/conformance.js';
import { VfioPlatform } from '../../../platform/vfio.js';

conformanceSuite('82574L conformance: QEMU e1000e through VFIO', async () => {
  if (process.env.DMABOX_LAB !== '1') {
    throw new Error(
      'this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run --e1000e -- ...` (appliance/lab/README.md)',
    );
  }
  const bdf = (process.env.DMABOX_LAB_E1000E ?? '').split(',').filter(Boolean)[0];
  if (!bdf) throw new Error('DMABOX_LAB_E1000E names no e1000e: boot the lab with --e1000e');
  const p = VfioPlatform.open(bdf);
  // QEMU's e1000e NIC i has MAC 52:54:00:12:34:56 + i (appliance/lab/README.md); the lab has one.
  return { platform: p, mac: [0x52, 0x54, 0x00, 0x12, 0x34, 0x56], done: () => p.close() };
}).run();
