/**
 * Errors of the `dmabox` command itself (its arguments, where it runs from): one class, one closed
 * set of codes, documented in cli/README.md. Errors of the layers a subcommand calls keep their own
 * class and code; cli/main.ts prints any of them as `dmabox CMD: CODE: message`.
 */
import { DmaboxError } from '../common/errors.js';

export type CliCode = 'ERR_CLI_USAGE' | 'ERR_CLI_DEMO_POLICY';

export class CliError extends DmaboxError<CliCode> {}
