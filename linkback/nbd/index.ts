/** The NBD linkback server's public surface. See linkback/README.md. */
export { NbdServer, DEFAULT_LIMITS, type NbdServerOptions, type NbdServerStats } from './server.js';
export type { NbdEvent, ConnectionLimits } from './connection.js';
export type { NbdExportOptions, NbdExportStats } from './export.js';
export { NbdError, type NbdCode } from './errors.js';
