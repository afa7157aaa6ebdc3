// containers "simple signing" (containers-signature(5)): an OpenPGP signed message whose literal
// data is a small JSON payload binding a docker reference to a manifest digest. skopeo
// `standalone-sign` writes it; `standalone-verify`, podman and CRI-O check it.
import { ErrorCode, RktError, isRktError, parseDigest, parseJsonStrict, type Digest } from "@rkt/oci";
import type { Key, Message, Subkey } from "openpgp";
import { matchSignedIdentity, parseNamedRef, type NamedRef, type SignedIdentity } from "./identity.js";
import { errorText } from "./key.js";
import { PacketTag, messagePackets, type RawPacket } from "./packets.js";
import { pgp } from "./pgp.js";

// The largest signature blob or payload handled (containers caps signatures at 4 MiB).
const maxSignatureBytes = 4 << 20;

/** The `critical.type` every simple-signing payload carries. */
export const simpleSigningType = "atomic container signature";

/** A parsed simple-signing payload. */
export interface SimpleSigningPayload {
  /** `critical.identity.docker-reference`, as written. */
  readonly dockerReference: string;
  /** `critical.image.docker-manifest-digest`. */
  readonly manifestDigest: Digest;
  /** `optional.creator`, when a string. */
  readonly creator?: string | undefined;
  /** `optional.timestamp`: integer seconds since the epoch. */
  readonly timestamp?: number | undefined;
  /** The whole `optional` object (unknown members tolerated, as the spec requires). */
  readonly optional: Readonly<Record<string, unknown>>;
}

/**
 * Serialises a payload as skopeo does (member order `critical{identity,image,type}`,
 * `optional{creator,timestamp}`). Pure.
 */
export function formatSimpleSigningPayload(p: {
  dockerReference: string;
  manifestDigest: string;
  creator?: string | undefined;
  timestamp?: number | undefined;
}): Uint8Array {
  const optional: Record<string, unknown> = {};
  if (p.creator !== undefined) optional["creator"] = p.creator;
  if (p.timestamp !== undefined) optional["timestamp"] = p.timestamp;
  return new TextEncoder().encode(
    JSON.stringify({
      critical: {
        identity: { "docker-reference": p.dockerReference },
        image: { "docker-manifest-digest": p.manifestDigest },
        type: simpleSigningType,
      },
      optional,
    }),
  );
}

/**
 * Parses a payload strictly (containers' "paranoid" decoder): duplicate members anywhere, any
 * member other than `critical` and `optional` at the top, any unknown or mistyped member inside
 * `critical`, a wrong `type`, a bad digest or a fractional timestamp are refused with
 * RKT_SIGNATURE_INVALID `invalid signature payload: <JSONPath>: <problem>`. Unknown `optional`
 * members are kept. Pure.
 */
export function parseSimpleSigningPayload(bytes: Uint8Array): SimpleSigningPayload {
  const r = parseJsonStrict(bytes);
  if (!r.ok) {
    const i = r.issues[0]!;
    bad(i.path, i.message);
  }
  const top = exactObject(r.value, "$", ["critical", "optional"]);
  const critical = exactObject(top["critical"], "$.critical", ["identity", "image", "type"]);
  if (critical["type"] !== simpleSigningType) {
    bad("$.critical.type", `must be ${JSON.stringify(simpleSigningType)}`);
  }
  const image = exactObject(critical["image"], "$.critical.image", ["docker-manifest-digest"]);
  const identity = exactObject(critical["identity"], "$.critical.identity", ["docker-reference"]);
  const digestText = image["docker-manifest-digest"];
  if (typeof digestText !== "string") bad('$.critical.image["docker-manifest-digest"]', "must be a string");
  let manifestDigest: Digest;
  try {
    manifestDigest = parseDigest(digestText);
  } catch (e) {
    if (!isRktError(e)) throw e;
    bad('$.critical.image["docker-manifest-digest"]', e.message);
  }
  const dockerReference = identity["docker-reference"];
  if (typeof dockerReference !== "string") bad('$.critical.identity["docker-reference"]', "must be a string");
  const optional = top["optional"];
  if (typeof optional !== "object" || optional === null || Array.isArray(optional)) {
    bad("$.optional", "must be an object");
  }
  const opt = optional as Record<string, unknown>;
  const creator = opt["creator"];
  if (creator !== undefined && typeof creator !== "string") bad("$.optional.creator", "must be a string");
  const timestamp = opt["timestamp"];
  if (timestamp !== undefined && !(typeof timestamp === "number" && Number.isSafeInteger(timestamp))) {
    bad("$.optional.timestamp", "must be an integer");
  }
  return {
    dockerReference,
    manifestDigest,
    ...(creator === undefined ? {} : { creator }),
    ...(timestamp === undefined ? {} : { timestamp }),
    optional: opt,
  };
}

/** Input to `createSimpleSignature`. */
export interface CreateSimpleSignatureInput {
  /** The identity to sign for, e.g. `registry.example.com/ns/app:1.0`. */
  readonly dockerReference: string;
  /** The manifest digest (of the exact manifest bytes) to bind. */
  readonly manifestDigest: string;
  /** An ASCII-armored private key (its signing key or subkey is used). */
  readonly privateKeyArmored: string;
  readonly passphrase?: string | undefined;
  /** Defaults to `rkt`. */
  readonly creator?: string | undefined;
  /** Seconds since the epoch; defaults to now. */
  readonly timestamp?: number | undefined;
}

/**
 * Makes a simple-signing signature: a binary OpenPGP signed message (one-pass signature, literal
 * data, signature) over the payload, the format of skopeo `standalone-sign` output and of lookaside
 * `signature-N` files. Throws RKT_INVALID_ARGUMENT for a bad key or passphrase and
 * RKT_INVALID_REFERENCE / RKT_INVALID_DIGEST for bad inputs. No I/O.
 */
export async function createSimpleSignature(o: CreateSimpleSignatureInput): Promise<Uint8Array> {
  parseNamedRef(o.dockerReference);
  parseDigest(o.manifestDigest);
  const openpgp = await pgp();
  let key;
  try {
    key = await openpgp.readPrivateKey({ armoredKey: o.privateKeyArmored });
    if (!key.isDecrypted()) {
      if (o.passphrase === undefined)
        throw new Error("the private key is encrypted and no passphrase was given");
      key = await openpgp.decryptKey({ privateKey: key, passphrase: o.passphrase });
    }
  } catch (e) {
    throw new RktError(ErrorCode.InvalidArgument, `error reading signing key: ${errorText(e)}`, { cause: e });
  }
  const payload = formatSimpleSigningPayload({
    dockerReference: o.dockerReference,
    manifestDigest: o.manifestDigest,
    creator: o.creator ?? "rkt",
    timestamp: o.timestamp ?? Math.floor(Date.now() / 1000),
  });
  const message = await openpgp.createMessage({ binary: payload });
  // The declared return type goes through DOM stream types we do not load; a Uint8Array message
  // in gives a Uint8Array out.
  const signed = (await openpgp.sign({
    message,
    signingKeys: key,
    format: "binary",
  })) as unknown as Uint8Array;
  return signed;
}

/** Options of `verifySimpleSignature`. */
export interface VerifySimpleSignatureOptions {
  /** Public keys any of which may have made the signature (primary keys or subkeys). */
  readonly keys: readonly Key[];
  /** The image being checked; undefined for transports with no docker identity. */
  readonly expectedReference: NamedRef | string | undefined;
  /** The digest of the manifest the image uses; must equal the signed one. */
  readonly manifestDigest: string;
  /** Defaults to `matchRepoDigestOrExact`, as policy.json does. */
  readonly signedIdentity?: SignedIdentity | undefined;
  /** The time keys and signatures must be valid at; defaults to now. */
  readonly date?: Date | undefined;
}

/** A signature that passed every check. */
export interface SimpleSignatureVerdict extends SimpleSigningPayload {
  /** Lowercase fingerprint of the primary key that holds the signing key. */
  readonly fingerprint: string;
  /** Lowercase fingerprint of the (sub)key that made the signature. */
  readonly signerFingerprint: string;
  /** The user IDs of that primary key (`Name <email>`), for messages. */
  readonly identities: readonly string[];
}

/**
 * Verifies one simple-signing signature blob, in the spec's order: the OpenPGP structure
 * (a signed message, possibly compressed, with exactly one signature packet and one literal;
 * a cleartext signature is refused), the signer among `keys`, signature and key validity, the
 * cryptographic check, and only then the payload (strict parse), the manifest digest and the
 * identity. Accepts the raw OpenPGP form and the `\0simple-signing\n` envelope; sigstore blobs
 * are refused. Throws RKT_KEY_UNTRUSTED when no key in `keys` made it, otherwise
 * RKT_SIGNATURE_INVALID naming the reason. No I/O.
 */
export async function verifySimpleSignature(
  blob: Uint8Array,
  o: VerifySimpleSignatureOptions,
): Promise<SimpleSignatureVerdict> {
  const openpgp = await pgp();
  const date = o.date ?? new Date();
  const bytes = unwrapEnvelope(blob);
  let message: Message<Uint8Array>;
  let packets: RawPacket[];
  try {
    const head = new TextDecoder().decode(bytes.subarray(0, 40));
    if (head.startsWith("-----BEGIN PGP SIGNED MESSAGE-----")) {
      invalid("a cleartext signature is not a simple-signing signature");
    }
    let binary = bytes;
    if (head.startsWith("-----BEGIN PGP MESSAGE-----")) {
      const armor: unknown = await openpgp.unarmor(new TextDecoder().decode(bytes));
      binary = (armor as { data: Uint8Array }).data; // typed through DOM stream types we do not load
    }
    packets = messagePackets(binary, maxSignatureBytes);
    message = (await openpgp.readMessage({ binaryMessage: binary })).unwrapCompressed();
  } catch (e) {
    if (isRktError(e)) throw e;
    invalid(`not an OpenPGP message: ${errorText(e)}`, e);
  }
  const tags = packets.map((p) => p.tag);
  const count = (t: number): number => tags.filter((x) => x === t).length;
  const sigCount = count(PacketTag.Signature);
  if (sigCount !== 1) invalid(`signature contains ${sigCount} signature packets; exactly one is expected`);
  if (count(PacketTag.Literal) !== 1) invalid("signature does not contain exactly one literal data packet");
  const allowed = new Set<number>([
    PacketTag.Signature,
    PacketTag.OnePassSignature,
    PacketTag.Literal,
    PacketTag.Marker,
  ]);
  if (tags.some((t) => !allowed.has(t))) invalid("signature is not a plain OpenPGP signed message");
  const sigPacket = new openpgp.SignaturePacket();
  try {
    sigPacket.read(packets.find((p) => p.tag === PacketTag.Signature)!.body);
  } catch (e) {
    invalid(`unreadable signature packet: ${errorText(e)}`, e);
  }
  const id = sigPacket.issuerKeyID;
  let found: { key: Key; signer: Key | Subkey } | undefined;
  for (const key of o.keys) {
    const signer = key.getKeys(id)[0];
    if (signer !== undefined) {
      found = { key, signer };
      break;
    }
  }
  if (found === undefined) {
    throw new RktError(ErrorCode.KeyUntrusted, `signature made by unknown key ${id.toHex().toUpperCase()}`);
  }
  const fp = found.key.getFingerprint().toLowerCase();
  if (sigPacket.isExpired(date)) {
    const exp = new Date(
      (sigPacket.created?.getTime() ?? 0) + (sigPacket.signatureExpirationTime ?? 0) * 1000,
    );
    invalid(`signature expired at ${exp.toISOString()} (made by key ${fp})`);
  }
  try {
    await found.key.getSigningKey(found.signer.getKeyID(), date);
  } catch (e) {
    invalid(`signing key ${fp} is not valid: ${errorText(e)}`, e);
  }
  let payloadBytes: Uint8Array;
  try {
    const r = await openpgp.verify({
      message,
      verificationKeys: [found.key],
      expectSigned: true,
      format: "binary",
      date,
    });
    const data: unknown = r.data; // declared through DOM stream types we do not load
    payloadBytes = data as Uint8Array;
  } catch (e) {
    invalid(
      `openpgp: invalid signature: ${errorText(e).replace(/^error verifying signed message: /, "")}`,
      e,
    );
  }
  const payload = parseSimpleSigningPayload(payloadBytes);
  if (payload.manifestDigest !== o.manifestDigest) {
    invalid(`signature is for manifest digest ${payload.manifestDigest}, not ${o.manifestDigest}`);
  }
  const rule = o.signedIdentity ?? { type: "matchRepoDigestOrExact" };
  const image =
    typeof o.expectedReference === "string" ? parseNamedRef(o.expectedReference) : o.expectedReference;
  if (!matchSignedIdentity(rule, image, payload.dockerReference)) {
    invalid(
      `signature is for ${JSON.stringify(payload.dockerReference)}, which ${rule.type} does not accept for ${
        image === undefined ? "an image without a docker reference" : JSON.stringify(formatRef(image))
      }`,
    );
  }
  return {
    ...payload,
    fingerprint: fp,
    signerFingerprint: found.signer.getFingerprint().toLowerCase(),
    identities: found.key.getUserIDs(),
  };
}

/**
 * The key ID (16 lowercase hex) of the key that made a simple-signing signature, read from its
 * signature packet without verifying anything: which public key a bundle must carry for it.
 * RKT_SIGNATURE_INVALID when the blob is not a signed message with exactly one signature. No I/O.
 */
export async function simpleSignatureKeyId(blob: Uint8Array): Promise<string> {
  const openpgp = await pgp();
  const bytes = unwrapEnvelope(blob);
  let packets: RawPacket[];
  try {
    let binary = bytes;
    if (new TextDecoder().decode(bytes.subarray(0, 40)).startsWith("-----BEGIN PGP MESSAGE-----")) {
      const armor: unknown = await openpgp.unarmor(new TextDecoder().decode(bytes));
      binary = (armor as { data: Uint8Array }).data;
    }
    packets = messagePackets(binary, maxSignatureBytes);
  } catch (e) {
    if (isRktError(e)) throw e;
    invalid(`not an OpenPGP message: ${errorText(e)}`, e);
  }
  const sigs = packets.filter((p) => p.tag === PacketTag.Signature);
  if (sigs.length !== 1)
    invalid(`signature contains ${sigs.length} signature packets; exactly one is expected`);
  const sigPacket = new openpgp.SignaturePacket();
  try {
    sigPacket.read(sigs[0]!.body);
  } catch (e) {
    invalid(`unreadable signature packet: ${errorText(e)}`, e);
  }
  return sigPacket.issuerKeyID.toHex().toLowerCase();
}

function formatRef(r: NamedRef): string {
  return r.name + (r.tag === undefined ? "" : `:${r.tag}`) + (r.digest === undefined ? "" : `@${r.digest}`);
}

// containers/image internal/signature: a blob starting with 0x00 is `\0<format>\n<payload>`;
// anything else is a raw simple-signing OpenPGP message.
function unwrapEnvelope(blob: Uint8Array): Uint8Array {
  if (blob.length === 0) invalid("empty signature");
  if (blob.length > maxSignatureBytes) invalid(`signature is larger than ${maxSignatureBytes} bytes`);
  if (blob[0] !== 0) return blob;
  const nl = blob.indexOf(0x0a);
  const format = nl === -1 ? "" : new TextDecoder().decode(blob.subarray(1, nl));
  if (format === "simple-signing") return blob.subarray(nl + 1);
  if (format === "sigstore-json") invalid("sigstore signatures are not supported; only simple signing is");
  invalid(`unknown signature format ${JSON.stringify(format)}`);
}

function invalid(why: string, cause?: unknown): never {
  throw new RktError(ErrorCode.SignatureInvalid, why, cause === undefined ? {} : { cause });
}

function bad(path: string, why: string): never {
  invalid(`invalid signature payload: ${path}: ${why}`);
}

function exactObject(v: unknown, path: string, fields: readonly string[]): Record<string, unknown> {
  if (typeof v !== "object" || v === null || Array.isArray(v)) bad(path, "must be an object");
  const o = v as Record<string, unknown>;
  for (const k of Object.keys(o)) {
    if (!fields.includes(k))
      bad(`${path}${/^[A-Za-z_]\w*$/.test(k) ? `.${k}` : `[${JSON.stringify(k)}]`}`, "unknown field");
  }
  for (const f of fields) {
    if (!(f in o)) bad(path, `missing field ${JSON.stringify(f)}`);
  }
  return o;
}
