/**
 * Lab (real VFIO in the QEMU guest): interrupt remapping and SET_IOMMU. The suite's machine has
 * remapping on (DMAR-IR), and SET_IOMMU works. Booted with `intremap=off` on the kernel command
 * line (launchLab({ kernelArgs: ['intremap=off'] })), the kernel refuses SET_IOMMU with EPERM and
 * logs the allow_unsafe_interrupts hint; vfio-bindings reports ERR_VFIO_NO_INTERRUPT_REMAPPING
 * with the fix. The test checks whichever machine it runs on, told by iommuStatus().
 */
import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { Container, Group, iommuStatus, VfioCode, VfioError } from 'vfio-bindings';
import { findOne, inLab, KernelLog, NVME_IDS } from './lab-env.js';

test('SET_IOMMU follows interrupt remapping: works with it, ERR_VFIO_NO_INTERRUPT_REMAPPING (EPERM) without', () => {
  inLab();
  const ir = iommuStatus().interruptRemapping;
  assert.ok(ir.state !== 'unknown', `interrupt remapping can be told in the lab (${ir.evidence})`);
  const unsafe = iommuStatus().unsafeInterrupts;
  const fn = findOne(NVME_IDS);
  const c = Container.open();
  const log = new KernelLog();
  let g: Group | undefined;
  try {
    g = Group.open(fn.iommuGroup);
    g.setContainer(c);
    if (ir.state === 'enabled' || unsafe) {
      c.setIommu();
      assert.ok(c.iommuSet);
      return;
    }
    try {
      c.setIommu();
      assert.unreachable('SET_IOMMU without interrupt remapping must be refused');
    } catch (e) {
      const err = e as VfioError;
      assert.is(err.code, VfioCode.NO_INTERRUPT_REMAPPING, err.message);
      assert.is(err.errnoName, 'EPERM');
      assert.match(err.fix ?? '', /allow_unsafe_interrupts/);
    }
    assert.ok(log.waitFor(/No interrupt remapping support/, 3000), 'the kernel says why');
  } finally {
    log.close();
    g?.close();
    c.close();
  }
});

test.run();
