const brand = Symbol.for("rkt.error");

/**
 * Stable error codes. Callers match on `code`, never on message text. Codes are never renamed or
 * reused once released; add new ones at the end. `test/errors.test.ts` pins the list.
 */
export const ErrorCode = {
  InvalidReference: "RKT_INVALID_REFERENCE",
  InvalidDigest: "RKT_INVALID_DIGEST",
  UnsupportedAlgorithm: "RKT_UNSUPPORTED_ALGORITHM",
  InvalidManifest: "RKT_INVALID_MANIFEST",
  UnsupportedMediaType: "RKT_UNSUPPORTED_MEDIA_TYPE",
  InvalidArchive: "RKT_INVALID_ARCHIVE",
  InvalidName: "RKT_INVALID_NAME",
  InvalidArgument: "RKT_INVALID_ARGUMENT",
  NotFound: "RKT_NOT_FOUND",
  AlreadyExists: "RKT_ALREADY_EXISTS",
  Ambiguous: "RKT_AMBIGUOUS",
  Unavailable: "RKT_UNAVAILABLE",
  DigestMismatch: "RKT_DIGEST_MISMATCH",
  SizeMismatch: "RKT_SIZE_MISMATCH",
  TooLarge: "RKT_TOO_LARGE",
  NoMatchingPlatform: "RKT_NO_MATCHING_PLATFORM",
  Registry: "RKT_REGISTRY",
  Unauthorized: "RKT_UNAUTHORIZED",
  SignatureInvalid: "RKT_SIGNATURE_INVALID",
  KeyUntrusted: "RKT_KEY_UNTRUSTED",
  Io: "RKT_IO",
  Aborted: "RKT_ABORTED",
  Internal: "RKT_INTERNAL",
} as const;
export type ErrorCode = (typeof ErrorCode)[keyof typeof ErrorCode];

export interface RktErrorOptions {
  cause?: unknown;
  /** True when retrying the same operation may succeed (network hiccup, lock held, 429/5xx). */
  temporary?: boolean | undefined;
}

/**
 * The one error class of the project. The brand is a global symbol so that `isRktError` works even
 * when two copies of this package are loaded (undici's approach).
 */
export class RktError extends Error {
  readonly code: ErrorCode;
  readonly temporary: boolean;
  declare readonly [brand]: true;

  constructor(code: ErrorCode, message: string, o: RktErrorOptions = {}) {
    super(message, o.cause === undefined ? undefined : { cause: o.cause });
    this.name = "RktError";
    this.code = code;
    this.temporary = o.temporary ?? false;
    Object.defineProperty(this, brand, { value: true });
  }
}

/** True when `e` is an RktError (from any copy of this package), optionally with the given code. */
export function isRktError(e: unknown, code?: ErrorCode): e is RktError {
  return (
    typeof e === "object" && e !== null && brand in e && (code === undefined || (e as RktError).code === code)
  );
}

/** Raised when content does not hash to what was expected; keeps both sides (ggcr verify.Error). */
export class DigestMismatchError extends RktError {
  readonly expected: string;
  readonly actual: string;
  readonly bytes: number;
  constructor(what: string, expected: string, actual: string, bytes: number) {
    super(ErrorCode.DigestMismatch, `${what}: digest mismatch: expected ${expected}, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
    this.bytes = bytes;
  }
}

/** Raised when content is longer or shorter than its descriptor says. */
export class SizeMismatchError extends RktError {
  readonly expected: number;
  readonly actual: number;
  constructor(what: string, expected: number, actual: number) {
    super(ErrorCode.SizeMismatch, `${what}: size mismatch: expected ${expected} bytes, got ${actual}`);
    this.expected = expected;
    this.actual = actual;
  }
}
