/** PCI configuration space declarations against PCI Local Bus 3.0 §6.1-6.2 and §6.8, and the bus-master helper. */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { barOffset, CAP_ID, PCI, setBusMaster } from '../../../spec/pci/config.js';
import { MSI, MSIX, MSIX_ENTRY, PCIE } from '../../../spec/pci/capabilities.js';

test('type 0 header offsets (PCI 3.0 Figure 6-1)', () => {
  assert.equal(
    [
      PCI.VENDOR_ID.offset,
      PCI.DEVICE_ID.offset,
      PCI.COMMAND.offset,
      PCI.STATUS.offset,
      PCI.REVISION_ID.offset,
      PCI.CLASS_CODE.offset,
      PCI.HEADER_TYPE.offset,
      PCI.BAR0.offset,
      PCI.SUBSYSTEM_VENDOR_ID.offset,
      PCI.SUBSYSTEM_ID.offset,
      PCI.CAPABILITIES_POINTER.offset,
      PCI.INTERRUPT_LINE.offset,
      PCI.INTERRUPT_PIN.offset,
    ],
    [0x00, 0x02, 0x04, 0x06, 0x08, 0x09, 0x0e, 0x10, 0x2c, 0x2e, 0x34, 0x3c, 0x3d],
  );
  assert.equal([0, 1, 5].map(barOffset), [0x10, 0x14, 0x24]);
});

test('Command and Status bits (§6.2.2, §6.2.3); capability IDs; MSI, MSI-X and PCIe layouts', () => {
  assert.equal([PCI.COMMAND.IO_SPACE.mask, PCI.COMMAND.MEMORY_SPACE.mask, PCI.COMMAND.BUS_MASTER.mask, PCI.COMMAND.INTX_DISABLE.mask], [0x1, 0x2, 0x4, 0x400]);
  assert.equal([PCI.STATUS.INTX.mask, PCI.STATUS.CAP_LIST.mask], [0x8, 0x10]);
  assert.equal([CAP_ID.PM, CAP_ID.MSI, CAP_ID.PCIE, CAP_ID.MSIX], [0x01, 0x05, 0x10, 0x11]);
  assert.equal([MSIX.MC.offset, MSIX.MC.ENABLE.mask, MSIX.MC.FMASK.mask, MSIX.MC.TABLE_SIZE.max], [2, 0x8000, 0x4000, 2047]);
  assert.equal([MSIX_ENTRY.size, MSIX_ENTRY.VECTOR_CONTROL.offset], [16, 12]);
  assert.equal([MSI.MC.MME.mask, MSI.MASK.offset, MSI.PENDING.offset, MSI.SIZE], [0x70, 0x10, 0x14, 0x18]);
  assert.equal([PCIE.DEVCAP.offset, PCIE.DEVCAP.FLR.mask, PCIE.DEVCTL.offset, PCIE.DEVCTL.INITIATE_FLR.mask], [4, 1 << 28, 8, 0x8000]);
});

test('setBusMaster sets and clears only Bus Master Enable', () => {
  let cmd = 0x0402;
  const cfg = {
    read16: (o: number) => (o === 4 ? cmd : 0),
    write16: (o: number, v: number) => {
      if (o === 4) cmd = v;
    },
  };
  setBusMaster(cfg, true);
  assert.is(cmd, 0x0406);
  setBusMaster(cfg, false);
  assert.is(cmd, 0x0402);
});

test.run();
