/** The NVMe driver's public surface. See drivers/nvme/README.md. */
export { NvmeController, type NvmeOptions } from './controller.js';
export { Namespace } from './namespace.js';
export type { NamespaceHost } from './dispatch.js';
export { IoQueue, type SlotHandler } from './ioqueue.js';
export { STATUS_ABANDONED, STATUS_TIMED_OUT } from './queue.js';
export { NvmeStatusError, NvmeTimeoutError, NvmeControllerError, NvmeArgumentError, type NvmeCode } from './errors.js';
export { statusName } from '../../spec/nvme/status.js';
export type { IdentifyController, IdentifyNamespace } from '../../spec/nvme/identify.js';
