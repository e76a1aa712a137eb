/**
 * The manager's errors: one class, a closed set of codes, each documented in sandbox/README.md.
 */
import { DmaboxError } from '../../common/errors.js';

export type SandboxCode =
  | 'ERR_SANDBOX_FAILED' // the device is marked failed (restart limit, IOMMU fault policy stop, a driver that cannot start)
  | 'ERR_SANDBOX_STOPPED' // the sandbox was stopped
  | 'ERR_SANDBOX_IO' // the sandboxed driver reported an I/O error (BlockIoError)
  | 'ERR_SANDBOX_ARG' // a caller's argument out of range
  | 'ERR_SANDBOX_NOT_READY' // the device has not published its geometry yet
  | 'ERR_SANDBOX_UNSUPPORTED' // an operation the sandboxed device does not offer
  | 'ERR_SANDBOX_GEOMETRY' // the container published an impossible or changed geometry
  | 'ERR_SANDBOX_STATE' // a lifecycle call out of order (attach twice, a service a sandbox does not have)
  | 'ERR_SANDBOX_WINDOW' // the policy's windows cannot hold what a service needs
  | 'ERR_SANDBOX_DEVICE' // the device cannot be had (no model, no such PCI function, a class no driver kind serves)
  | 'ERR_SANDBOX_NOT_CONFINED' // the IOMMU would not confine the device
  | 'ERR_SANDBOX_DRIVER' // the driver named by the policy cannot be loaded or does not fit the device
  | 'ERR_SANDBOX_IRQ' // interrupt vectors asked beyond those granted
  | 'ERR_SANDBOX_SHM' // shared memory could not be made or mapped
  | 'ERR_SANDBOX_CONTROL' // the control socket
  | 'ERR_SANDBOX_NET_ARG' // a bridge broke the NicPort contract
  | 'ERR_SANDBOX_NET_TIMEOUT' // the NIC self-check got no answer
  | 'ERR_SANDBOX_PRIVILEGE' // leaving root failed (PrivilegeError)
  | 'ERR_SANDBOX_SPARE' // a spare process asked to take over another sandbox's or role's process, or one not running (spare.ts)
  | 'ERR_FAULTS_KMSG'; // the kernel log cannot be followed for IOMMU faults

export class SandboxError extends DmaboxError<SandboxCode> {}
