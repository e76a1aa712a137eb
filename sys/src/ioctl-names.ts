/**
 * Names for ioctl request numbers in error messages (`ioctl VFIO_IOMMU_MAP_DMA on fd 7` rather than
 * `ioctl 0x3b71`). The packages that define ioctls register theirs (vfio-bindings its VFIO_*,
 * the TAP code TUNSETIFF); an unknown number prints in hex.
 */
const names = new Map<number, string>();

/** Add `{ NAME: number }` entries to the table (later names for the same number win). */
export function registerIoctlNames(table: Readonly<Record<string, number>>): void {
  for (const [name, request] of Object.entries(table)) names.set(request, name);
}

/** `VFIO_IOMMU_MAP_DMA` for 0x3b71 once registered; hex for a number nobody registered. */
export function ioctlName(request: number): string {
  return names.get(request) ?? `0x${request.toString(16)}`;
}
