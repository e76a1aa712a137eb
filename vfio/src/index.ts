/**
 * vfio-bindings: Linux VFIO (type1) from Node.js. See README.md.
 *
 * Container -> Group -> Device, DMA mapping on the container, BARs through Mmio, interrupts to
 * eventfds, sysfs helpers; every syscall through the linux-sys seam (`Sys`), which tests replace.
 */
export const VERSION = '0.1.0';

export * from './errors.js';
export * from './uapi.js';
export { Mmio, SEGMENT_BYTES, type MmioSegment, type MmioFallback } from './mmio.js';
export { Container, type ContainerOptions, type MapPerm } from './container.js';
export { Group, type GroupOptions, type GroupStatus } from './group.js';
export { Device, ConfigSpace, type DeviceOptions } from './device.js';
export { EventfdVector, type IrqKind } from './irq.js';
export * from './sysfs.js';
export * from './iommu-status.js';
