/** `dmabox unbind BDF... [--driver NAME]`: see cli/devices.ts. */
export { unbind as run } from './devices.js';
