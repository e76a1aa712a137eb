/**
 * Lab (real VFIO in the QEMU guest): MSI and INTx delivered to eventfds. The e1000e raises an
 * interrupt on demand: set a cause in ICS with the same bit unmasked in IMS. Registers by the 82574L
 * datasheet §10.2.4: ICR 0xC0 (read clears), ICS 0xC8, IMS 0xD0, IMC 0xD8; cause LSC is bit 2.
 * (MSI-X is covered by nvme-identify.test.ts.)
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { VFIO } from 'vfio-bindings';
import { E1000E_IDS, findOne, inLab, openStack } from './lab-env.js';
import { setBusMaster } from '../../../spec/pci/config.js';

const ICR = 0xc0;
const ICS = 0xc8;
const IMS = 0xd0;
const IMC = 0xd8;
const LSC = 1 << 2;

for (const kind of ['msi', 'intx'] as const) {
  test(`${kind}: an e1000e interrupt cause reaches the eventfd${kind === 'intx' ? ' (automasked, then unmasked)' : ''}`, async () => {
    inLab();
    const s = openStack(findOne(E1000E_IDS));
    try {
      const index = kind === 'msi' ? VFIO.VFIO_PCI_MSI_IRQ_INDEX : VFIO.VFIO_PCI_INTX_IRQ_INDEX;
      const info = s.device.irqInfo(index);
      assert.ok(info.eventfd && info.count >= 1, `${kind}: ${JSON.stringify(info)}`);
      if (kind === 'intx') assert.ok(info.automasked, 'INTx is automasked by vfio-pci');
      setBusMaster(s.device.config, true);
      const bar = s.device.mapBar(0);
      bar.write32(IMC, 0xffffffff);
      bar.read32(ICR);
      const [v] = s.device.enableInterrupts(kind, 1);
      const fired = v!.wait(5000);
      bar.write32(IMS, LSC);
      bar.write32(ICS, LSC);
      assert.ok((await fired) >= 1n, `${kind} fired`);
      assert.ok((bar.read32(ICR) & LSC) !== 0, 'ICR holds the cause (and the read clears it)');
      if (kind === 'intx') {
        // Still masked: a new cause asserts the line but nothing reaches the eventfd...
        let fires = 0n;
        v!.onFire((n) => (fires += n));
        bar.write32(ICS, LSC);
        await new Promise((r) => setTimeout(r, 300));
        assert.is(fires, 0n, 'INTx stays masked until unmasked');
        // ...until the unmask, which delivers the pending, still-asserted line.
        const again = v!.wait(5000);
        s.device.unmaskInterrupt('intx');
        assert.ok((await again) >= 1n, 'after unmask, INTx fires again');
        assert.ok(fires >= 1n);
        bar.read32(ICR);
      }
      bar.write32(IMC, 0xffffffff);
      s.device.disableInterrupts();
      assert.ok(v!.isClosed);
    } finally {
      s.close();
    }
  });
}

test.run();
