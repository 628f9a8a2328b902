/**
 * Errors with stable codes. A `FieldlabError` is a user-facing error (bad option, bad scenario field,
 * missing capability...): the CLI prints its message and hint, never a stack trace. Anything else that
 * escapes is a bug and is reported as one.
 */
export class FieldlabError extends Error {
  override readonly name = 'FieldlabError';
  /** Stable code, e.g. `E_BAD_OPTION`, `E_TUNNEL_TOKEN_USED`: tests assert codes, not messages. */
  readonly code: string;
  /** One sentence on how to fix it, printed under the message. */
  readonly hint: string | undefined;
  /** Where the bad input lives (file, field path), when known. */
  readonly where: string | undefined;

  constructor(code: string, message: string, opts: { hint?: string; where?: string; cause?: unknown } = {}) {
    super(message, opts.cause === undefined ? undefined : { cause: opts.cause });
    this.code = code;
    this.hint = opts.hint;
    this.where = opts.where;
  }
}

export function isFieldlabError(err: unknown): err is FieldlabError {
  return err instanceof FieldlabError;
}

/** Node system errors carry `code` (ECONNREFUSED, ...); this reads it without `any`. */
export function errorCode(err: unknown): string | undefined {
  if (typeof err === 'object' && err !== null && 'code' in err) {
    const code = (err as { code: unknown }).code;
    return typeof code === 'string' ? code : undefined;
  }
  return undefined;
}
