/** `dmabox bind BDF...`: see cli/devices.ts. */
export { bind as run } from './devices.js';
