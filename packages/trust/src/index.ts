// Public entry of @rkt/trust: rkt's keystore, ACI signature verification, containers simple
// signing, lookaside storage, registries.d and policy.json.
export {
  parseArmoredKeyring,
  parseAnyKeyring,
  formatFingerprint,
  describeKey,
  armoredPublicKey,
  keyHasKeyId,
} from "./key.js";
export type { ParsedKeyring, KeyDescription } from "./key.js";
export {
  KeyStore,
  selectKeys,
  applicableEntries,
  prefixCovers,
  keyLoadOrder,
  defaultSystemConfigDir,
  defaultLocalConfigDir,
} from "./keystore.js";
export type { KeyLayer, KeyScope, KeyFileEntry, TrustedKey, KeyStoreOptions } from "./keystore.js";
export {
  verifyDetached,
  parseDetachedSignature,
  detachedSignatureKeyIds,
  createAciVerifier,
  unknownEntityMessage,
  noSignaturesMessage,
} from "./verify-aci.js";
export type { Verdict, Verifier, TrustedKeySource, VerifyDetachedInput } from "./verify-aci.js";
export {
  parseNamedRef,
  namedFromDockerRef,
  formatNamedRef,
  matchSignedIdentity,
  checkSignedIdentity,
} from "./identity.js";
export type { SignedIdentity, NamedRef } from "./identity.js";
export {
  simpleSigningType,
  formatSimpleSigningPayload,
  parseSimpleSigningPayload,
  createSimpleSignature,
  verifySimpleSignature,
  simpleSignatureKeyId,
} from "./simple-signing.js";
export type {
  SimpleSigningPayload,
  CreateSimpleSignatureInput,
  VerifySimpleSignatureOptions,
  SimpleSignatureVerdict,
} from "./simple-signing.js";
export {
  lookasideSignatureUrl,
  lookasideSignatureUrls,
  readLookasideSignatures,
  writeLookasideSignature,
  addLookasideSignatures,
  maxLookasideSignatures,
  maxSignatureBytes,
  parseRegistriesD,
  mergeRegistriesD,
  readRegistriesD,
  dockerScopes,
  builtinLookaside,
  lookasideFor,
} from "./lookaside.js";
export type { LookasideEntry, RegistriesD } from "./lookaside.js";
export {
  parsePolicy,
  parsePolicyOrThrow,
  readPolicy,
  policyPaths,
  requirementsFor,
  evaluatePolicy,
  policyKeys,
} from "./policy.js";
export type { Policy, PolicyRequirement, PolicyImage, PolicyDecision } from "./policy.js";
export { signaturePolicyPaths, findSignaturePolicy, registriesDPaths, findRegistriesD } from "./discovery.js";
export type { ConfigDirs } from "./discovery.js";
export {
  registrySignaturesPath,
  parseRegistrySignatures,
  formatRegistrySignature,
} from "./registry-signatures.js";
