/** The hypercall interface between a driver container and the manager: see README.md in this folder. */
export * from './protocol.js';
export * from './errors.js';
export * from './messages.js';
export { FrameDecoder, encodeFrame, type FrameHeader, type FrameSink } from './codec.js';
export { HypercallRefused, type ChannelOptions } from './channel.js';
export { HostEndpoint, DEFAULT_RATES, type HostHandler, type HostOptions, type HostState } from './host.js';
export { GuestEndpoint, type GuestHandler, type GuestOptions } from './guest.js';
export { TokenBuckets, type RateLimit } from './rate.js';
