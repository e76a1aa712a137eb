/**
 * The one base class for dmabox's own errors (vfio-bindings has its own, `VfioError`, since it is a
 * separate package). Every error carries a stable `code` string that programs may match on; the
 * message is for people and says what is wrong and, where we know it, how to fix it.
 */
export class DmaboxError extends Error {
  /** Stable, upper-case, never reworded: `ERR_DMA_WINDOW_PERM`, `ERR_POLICY_FIELD`, ... */
  readonly code: string;
  /** What a user can do about it, when there is something to do. */
  readonly fix: string | undefined;

  constructor(code: string, message: string, options: { cause?: unknown; fix?: string } = {}) {
    super(options.fix ? `${message}\n  fix: ${options.fix}` : message, { cause: options.cause });
    this.name = new.target.name;
    this.code = code;
    this.fix = options.fix;
  }
}
