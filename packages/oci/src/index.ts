export { ErrorCode, RktError, isRktError, DigestMismatchError, SizeMismatchError } from "./errors.js";
export type { RktErrorOptions } from "./errors.js";
