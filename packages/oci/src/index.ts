export { ErrorCode, RktError, isRktError, DigestMismatchError, SizeMismatchError } from "./errors.js";
export type { RktErrorOptions } from "./errors.js";
export {
  parseDigest,
  isDigest,
  digestAlgorithm,
  digestHex,
  digestOf,
  createDigester,
  verifyDigest,
} from "./digest.js";
export type { Digest, Algorithm, Digester } from "./digest.js";
