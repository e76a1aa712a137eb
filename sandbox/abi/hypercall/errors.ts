/**
 * What goes wrong on a hypercall channel. The manager treats every frame from a container as
 * hostile: each violation becomes a HypercallError with a stable code and a decision the manager
 * acts on. 'drop' means the frame was ignored and the channel still works; 'kill' means the channel
 * can no longer be trusted (or the peer is gone): the endpoint has stopped, and the container must
 * be killed.
 */
import { DmaboxError } from '../../../common/errors.js';

export type HcDecision = 'drop' | 'kill';

export type HcErrorCode =
  | 'ERR_HC_BAD_MAGIC' // kill: not our protocol, or the stream lost its framing
  | 'ERR_HC_BAD_VERSION' // kill: a header version other than the negotiated one
  | 'ERR_HC_FRAME_TOO_LARGE' // kill: a length beyond the maximum (its bytes cannot be trusted to skip)
  | 'ERR_HC_TRUNCATED' // kill: the stream ended inside a frame
  | 'ERR_HC_SEQUENCE' // kill: a repeated, replayed or skipped sequence id
  | 'ERR_HC_BAD_TYPE' // drop: an unknown type, or one that flows the other way
  | 'ERR_HC_BAD_LENGTH' // drop: a payload length that does not match the type's layout
  | 'ERR_HC_BAD_FIELD' // drop: a field out of range or a reserved field not zero
  | 'ERR_HC_STATE' // drop (kill before HELLO): a call not valid now
  | 'ERR_HC_UNEXPECTED_REPLY' // drop: a REPLY to nothing outstanding
  | 'ERR_HC_RATE' // drop: over the token bucket of its call type
  | 'ERR_HC_FLOOD' // kill: too many dropped frames within a second, whatever the reason
  | 'ERR_HC_DROPPED' // drop: a summary of dropped frames not reported one by one
  | 'ERR_HC_VERSION_MISMATCH' // kill: no protocol version both sides speak
  | 'ERR_HC_TIMEOUT' // kill on the host: a reply, HELLO or heartbeat did not come in time
  | 'ERR_HC_HEARTBEAT' // kill: the container stopped sending heartbeats
  | 'ERR_HC_CLOSED'; // kill: the channel closed (pending requests fail with it)

export class HypercallError extends DmaboxError<HcErrorCode> {
  readonly decision: HcDecision;
  constructor(code: HcErrorCode, decision: HcDecision, message: string, options: { fix?: string; cause?: unknown } = {}) {
    super(code, message, options);
    this.decision = decision;
  }
}

/**
 * A caller of an endpoint got something wrong on its own side (nothing was sent, nothing is a
 * violation): an argument out of range, or a call before hello().
 */
export type HcUsageCode =
  | 'ERR_HC_ARG' // an argument out of range (a window id, a vector count, a deadline, a driver name, a rate limit)
  | 'ERR_HC_NOT_STARTED'; // a guest call before hello()

export class HypercallUsageError extends DmaboxError<HcUsageCode> {}
