/**
 * NVMe completion status (NVMe 1.4 §4.6.1 "Status Field Definition"): the fields of the 15-bit
 * status (CQE dword 3 bits 31:17, spec/nvme/queue.ts CQE_DW3.STATUS), the Status Code Types and
 * the Status Codes dmabox meets, as data, and their names for messages. The driver decodes
 * statuses with these; the simulated controller builds them with `statusOf`.
 */
import { bit, bits, getField, isSet, setField } from '../field.js';

/** The Status Field without the Phase Tag: what `CQE_DW3.STATUS` holds (§4.6.1). */
export const STATUS = Object.freeze({
  /** Status Code. */
  SC: bits(7, 0, 'NVMe 1.4 §4.6.1'),
  /** Status Code Type (Sct). */
  SCT: bits(10, 8, 'NVMe 1.4 §4.6.1'),
  /** Command Retry Delay. */
  CRD: bits(12, 11, 'NVMe 1.4 §4.6.1'),
  /** More: a log page has more information. */
  M: bit(13, 'NVMe 1.4 §4.6.1'),
  /** Do Not Retry: the same command would fail again. */
  DNR: bit(14, 'NVMe 1.4 §4.6.1'),
});

/** Status Code Types (§4.6.1.1). */
export const Sct = Object.freeze({
  GENERIC: 0,
  COMMAND_SPECIFIC: 1,
  MEDIA_DATA_INTEGRITY: 2,
  PATH_RELATED: 3,
  VENDOR_SPECIFIC: 7,
});

/** Generic Command Status, SCT 0 (§4.6.1.2.1); 80h and up are the NVM command set's. */
export const GenericSc = Object.freeze({
  SUCCESS: 0x00,
  INVALID_COMMAND_OPCODE: 0x01,
  INVALID_FIELD: 0x02,
  COMMAND_ID_CONFLICT: 0x03,
  DATA_TRANSFER_ERROR: 0x04,
  ABORTED_POWER_LOSS: 0x05,
  INTERNAL_ERROR: 0x06,
  ABORTED_BY_REQUEST: 0x07,
  ABORTED_SQ_DELETION: 0x08,
  INVALID_NAMESPACE_OR_FORMAT: 0x0b,
  COMMAND_SEQUENCE_ERROR: 0x0c,
  INVALID_PRP_OFFSET: 0x13,
  /** The namespace is write protected (Namespace Write Protection, §8.16). */
  NAMESPACE_WRITE_PROTECTED: 0x20,
  LBA_OUT_OF_RANGE: 0x80,
  CAPACITY_EXCEEDED: 0x81,
  NAMESPACE_NOT_READY: 0x82,
});

/** Command Specific Status, SCT 1 (§4.6.1.2.2). */
export const CommandSpecificSc = Object.freeze({
  COMPLETION_QUEUE_INVALID: 0x00,
  INVALID_QUEUE_IDENTIFIER: 0x01,
  INVALID_QUEUE_SIZE: 0x02,
  ABORT_COMMAND_LIMIT_EXCEEDED: 0x03,
  ASYNC_EVENT_REQUEST_LIMIT_EXCEEDED: 0x05,
  INVALID_INTERRUPT_VECTOR: 0x08,
  INVALID_QUEUE_DELETION: 0x0c,
  FEATURE_NOT_SAVEABLE: 0x0d,
  /** NVM command set specific: Attempted Write to Read Only Range (§4.6.1.2.2, Figure 130). */
  ATTEMPTED_WRITE_TO_READ_ONLY_RANGE: 0x82,
});

/** Media and Data Integrity Errors, SCT 2 (§4.6.1.2.3). */
export const MediaSc = Object.freeze({
  WRITE_FAULT: 0x80,
  UNRECOVERED_READ_ERROR: 0x81,
});

/** Names for messages, keyed by (SCT << 8) | SC. */
const NAMES = new Map<number, string>();
for (const [table, sct] of [
  [GenericSc, Sct.GENERIC],
  [CommandSpecificSc, Sct.COMMAND_SPECIFIC],
  [MediaSc, Sct.MEDIA_DATA_INTEGRITY],
] as const) {
  for (const [name, sc] of Object.entries(table)) NAMES.set((sct << 8) | sc, name);
}

/** A 15-bit status from its type, code and Do Not Retry bit. */
export function statusOf(sct: number, sc: number, dnr = false): number {
  return setField(setField(setField(0, STATUS.SCT, sct), STATUS.SC, sc), STATUS.DNR, dnr ? 1 : 0);
}
export function sctOf(status: number): number {
  return getField(status, STATUS.SCT);
}
export function scOf(status: number): number {
  return getField(status, STATUS.SC);
}
export function dnrOf(status: number): boolean {
  return isSet(status, STATUS.DNR);
}

/** `INVALID_FIELD`, `LBA_OUT_OF_RANGE`, or `SCT 3 SC 0x99` for a status without a name here. */
export function statusName(status: number): string {
  const key = status & (STATUS.SC.mask | STATUS.SCT.mask);
  return NAMES.get(key) ?? `SCT ${sctOf(status)} SC 0x${scOf(status).toString(16).padStart(2, '0')}`;
}
