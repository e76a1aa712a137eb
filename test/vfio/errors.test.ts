import { test } from 'uvu';
import * as assert from 'uvu/assert';
import { SyscallError } from 'linux-sys';
import { decodeIommuInfo, decodeRegionInfo, explain, LAYOUT, VFIO, VfioCode, VfioError, walkCaps, type VfioCodeValue } from 'vfio-bindings';

const badInfo = (fn: () => unknown, message: RegExp): void => {
  try {
    fn();
  } catch (e) {
    assert.instance(e, VfioError);
    assert.is((e as VfioError).code, VfioCode.BAD_INFO);
    assert.match((e as VfioError).message, message);
    assert.match((e as VfioError).message, /fix: .*uname -r/);
    return;
  }
  assert.unreachable('no error');
};

test('VfioError carries one of the VfioCode values, and explain() keeps the errno and the cause', () => {
  const cause = new SyscallError('open /dev/vfio/7', 2);
  const e = explain(cause, VfioCode.GROUP_NOT_FOUND, 'there is no VFIO group 7', 'open /dev/vfio/7', 'bind it first');
  const c: VfioCodeValue = e.code;
  assert.is(c, 'ERR_VFIO_GROUP_NOT_FOUND');
  assert.is(e.errnoName, 'ENOENT');
  assert.is(e.cause, cause);
  assert.match(e.message, /^open \/dev\/vfio\/7: there is no VFIO group 7 \(ENOENT\)\n {2}fix: bind it first$/);
  // @ts-expect-error: a free string is not a VFIO code (the build fails if VfioError ever takes any string again)
  assert.ok(new VfioError('ERR_SOMETHING', 'x'));
  // @ts-expect-error: nor for explain()
  assert.ok(explain(cause, 'ERR_SOMETHING', 'x', 'op'));
});

test('a capability chain that leaves its buffer is ERR_VFIO_BAD_INFO, not a bare RangeError', () => {
  const buf = new Uint8Array(64);
  badInfo(() => walkCaps(buf, 60), /capability chain broken at offset 60/);
  // A chain that loops on itself is cut off after 64 capabilities.
  new DataView(buf.buffer).setUint32(24 + LAYOUT.vfio_info_cap_header.fields.next, 24, true);
  badInfo(() => walkCaps(buf, 24), /64 caps read/);
});

test('IOMMU info whose IOVA range capability claims more ranges than the buffer holds is ERR_VFIO_BAD_INFO', () => {
  const info = LAYOUT.vfio_iommu_type1_info;
  const cap = LAYOUT.vfio_iommu_type1_info_cap_iova_range;
  const buf = new Uint8Array(info.size + cap.size + LAYOUT.vfio_iova_range.size);
  const v = new DataView(buf.buffer);
  v.setUint32(info.fields.argsz, buf.byteLength, true);
  v.setUint32(info.fields.flags, VFIO.VFIO_IOMMU_INFO_CAPS, true);
  v.setUint32(info.fields.cap_offset, info.size, true);
  v.setUint16(info.size + LAYOUT.vfio_info_cap_header.fields.id, VFIO.VFIO_IOMMU_TYPE1_INFO_CAP_IOVA_RANGE, true);
  v.setUint32(info.size + cap.fields.nr_iovas, 1, true);
  assert.is(decodeIommuInfo(buf).iovaRanges!.length, 1);
  v.setUint32(info.size + cap.fields.nr_iovas, 2, true);
  badInfo(() => decodeIommuInfo(buf), /IOVA range 1 of 2 lies past the IOMMU info buffer/);
});

test('region info whose sparse mmap capability claims more areas than the buffer holds is ERR_VFIO_BAD_INFO', () => {
  const info = LAYOUT.vfio_region_info;
  const cap = LAYOUT.vfio_region_info_cap_sparse_mmap;
  const buf = new Uint8Array(info.size + cap.size + LAYOUT.vfio_region_sparse_mmap_area.size);
  const v = new DataView(buf.buffer);
  v.setUint32(info.fields.argsz, buf.byteLength, true);
  v.setUint32(info.fields.flags, VFIO.VFIO_REGION_INFO_FLAG_CAPS | VFIO.VFIO_REGION_INFO_FLAG_MMAP, true);
  v.setUint32(info.fields.cap_offset, info.size, true);
  v.setUint16(info.size + LAYOUT.vfio_info_cap_header.fields.id, VFIO.VFIO_REGION_INFO_CAP_SPARSE_MMAP, true);
  v.setUint32(info.size + cap.fields.nr_areas, 1, true);
  assert.is(decodeRegionInfo(buf).sparse!.length, 1);
  v.setUint32(info.size + cap.fields.nr_areas, 3, true);
  badInfo(() => decodeRegionInfo(buf), /sparse mmap area 1 of 3 lies past the region info buffer/);
});

test.run();
