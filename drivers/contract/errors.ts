/**
 * Errors of the driver contract's own pieces (today PacketBatch): a caller passing what the
 * contract does not allow.
 */
import { DmaboxError } from '../../common/errors.js';

export type ContractCode = 'ERR_CONTRACT_ARG';

export class ContractError extends DmaboxError<ContractCode> {}
