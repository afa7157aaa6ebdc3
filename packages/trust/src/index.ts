// Public entry of @rkt/trust: rkt's keystore, ACI signature verification, containers simple
// signing, lookaside storage, registries.d and policy.json.
export { parseArmoredKeyring, parseAnyKeyring, formatFingerprint, describeKey } from "./key.js";
export type { ParsedKeyring, KeyDescription } from "./key.js";
export { KeyStore, selectKeys, applicableEntries, prefixCovers, keyLoadOrder } from "./keystore.js";
export type { KeyLayer, KeyScope, KeyFileEntry, TrustedKey, KeyStoreOptions } from "./keystore.js";
export {
  verifyDetached,
  parseDetachedSignature,
  createAciVerifier,
  unknownEntityMessage,
  noSignaturesMessage,
} from "./verify-aci.js";
export type { Verdict, Verifier, TrustedKeySource, VerifyDetachedInput } from "./verify-aci.js";
