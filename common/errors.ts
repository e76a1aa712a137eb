/**
 * The one base class for dmabox's own errors (the packages linux-sys and vfio-bindings have their
 * own, being standalone). Every error carries a stable `code` string that programs may match on;
 * the message is for people and says what is wrong and, where we know it, how to fix it.
 *
 * Each area declares its own class with a closed set of codes, so a code cannot be thrown under
 * the wrong class and `instanceof` agrees with `code`:
 *
 *   export type DmaCode = 'ERR_DMA_ARG' | 'ERR_DMA_IOVA_EXHAUSTED' | ...;
 *   export class DmaError extends DmaboxError<DmaCode> {}
 *   throw new DmaError('ERR_DMA_ARG', `window of ${n} bytes: expected a positive size`, { fix: '...' });
 *
 * Every code is documented once, in a table of its folder's README with the columns
 * `| code | meaning | fix |` (test/common/error-codes.test.ts holds the source against the docs).
 * The base is abstract: an error is always of its area's class.
 */
export abstract class DmaboxError<C extends string = string> extends Error {
  /** Stable, upper-case, never reworded: `ERR_DMA_WINDOW_STATE`, `ERR_POLICY_INVALID`, ... */
  readonly code: C;
  /** What a user can do about it, when there is something to do. */
  readonly fix: string | undefined;

  constructor(code: C, message: string, options: { cause?: unknown; fix?: string } = {}) {
    super(options.fix ? `${message}\n  fix: ${options.fix}` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.fix = options.fix;
  }
}
