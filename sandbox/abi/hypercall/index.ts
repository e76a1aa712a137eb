/** The hypercall interface between a driver container and the manager: see ../README.md. */
export * from './protocol.js';
export * from './errors.js';
export * from './messages.js';
export { FrameDecoder, encodeFrame, type FrameHeader, type FrameSink } from './codec.js';
export { HypercallRefused, type ChannelOptions } from './channel.js';
export { realTimers, type Timer, type Timers } from '../../../common/timers.js';
