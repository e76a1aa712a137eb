/**
 * The NVMe driver suite (test/drivers/nvme/suite.ts) against QEMU's NVMe controller through real
 * VFIO, inside the lab guest (appliance/lab, DMABOX_LAB=1). Same tests as on the simulator; the
 * differences are data: serial `lab0` and model `QEMU NVMe Ctrl`, QEMU's DMAR trace as the fault
 * log, and QEMU 7.2 completing a blocked transfer with success (LAB-NOTES.md), so the confinement
 * tests check memory and the fault log, not the status.
 */
import { existsSync, readFileSync } from 'node:fs';
import { VfioPlatform } from '../../../platform/vfio.js';
import { parseDmarTrace } from '../../../appliance/lab/dmar.js';
import { nvmeDriverSuite } from '../../drivers/nvme/suite.js';

if (process.env.DMABOX_LAB !== '1') {
  throw new Error('this test runs only inside the lab guest (DMABOX_LAB=1): use `npm run test:lab` or `dmabox lab run -- ...` (appliance/lab/README.md)');
}
const bdf = (process.env.DMABOX_LAB_NVME ?? '').split(',').filter(Boolean)[0];
if (!bdf) throw new Error('DMABOX_LAB_NVME names no NVMe function: start the lab with --nvme SIZE');
const trace = process.env.DMABOX_LAB_DMAR_TRACE;
if (!trace || !existsSync(trace)) throw new Error(`the DMAR trace (DMABOX_LAB_DMAR_TRACE=${trace}) is missing: run the lab with --trace-dmar`);

nvmeDriverSuite({
  name: `QEMU NVMe ${bdf} through VFIO`,
  open: () => VfioPlatform.open(bdf),
  serial: 'lab0',
  model: 'QEMU NVMe Ctrl',
  queues: 2,
  reportsTransferErrors: false,
  faultCount: () => parseDmarTrace(readFileSync(trace, 'utf8')).filter((f) => f.bdf === bdf).length,
  // TCG is 4 to 13 times slower than the host: generous bounds, still bounded.
  options: { adminTimeoutMs: 10_000, ioTimeoutMs: 20_000 },
});
