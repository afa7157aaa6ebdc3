// What a signed bundle holds, as the index.json annotation `io.rkt.bundle.v1` states it: a
// pretty-printed JSON document a person can read (`jq -r '.annotations["io.rkt.bundle.v1"]'` or
// `rkt image bundle inspect`). It says which blobs are signatures, keys and ACIs, and what each
// signature is for. It is a description, not a source of trust: a loader checks every blob it
// names against its digest and every image against the receiving machine's own keys. Pure.
import {
  ErrorCode,
  MediaType,
  RktError,
  parseDigest,
  parseJsonStrict,
  type Descriptor,
  type Digest,
} from "@rkt/oci";

/** The index.json annotation that makes an OCI archive a bundle. */
export const bundleAnnotation = "io.rkt.bundle.v1";

/** Media types of the blobs a bundle carries besides images. */
export const BundleMediaType = {
  /** An ACI exactly as signed (any compression). */
  Aci: MediaType.AppcAci,
  /** A detached OpenPGP signature of an ACI (`.aci.asc`). */
  AciSignature: "application/pgp-signature",
  /** A containers simple-signing signature (an OpenPGP signed message, as in a lookaside). */
  SimpleSigning: "application/vnd.rkt.simple-signing.v1",
  /** An ASCII-armored OpenPGP public key. */
  PublicKey: "application/pgp-keys",
} as const;

/** A blob of the bundle: where it is and what it is. */
export interface BundleBlob {
  readonly mediaType: string;
  readonly digest: Digest;
  readonly size: number;
}

/** One signature of an image. */
export interface BundleSignature {
  readonly descriptor: BundleBlob;
  /** The signer's key ID (16 lowercase hex), read from the signature. */
  readonly keyId: string;
  /** The signer's primary key fingerprint, when the saving machine knew the key. */
  readonly fingerprint?: string | undefined;
  /** Simple signing: the manifest digest and docker reference signed (as the saver verified them). */
  readonly signs?: string | undefined;
  readonly reference?: string | undefined;
}

/** An OCI or Docker image: an index.json entry of the archive under `name`. */
export interface BundleOciImage {
  readonly kind: "oci";
  /** `REGISTRY/REPOSITORY:TAG`, the entry's `org.opencontainers.image.ref.name`. */
  readonly name: string;
  /** The manifest, or the index when saved with every platform. */
  readonly descriptor: BundleBlob;
  /** `os/arch[/variant]` of each image of an index (informational). */
  readonly platforms?: readonly string[] | undefined;
  /** Bytes of its blobs (informational). */
  readonly size: number;
  readonly signatures: readonly BundleSignature[];
}

/** An ACI, carried as a blob. */
export interface BundleAci {
  readonly kind: "aci";
  /** The ACI's manifest name and labels (informational: the loader reads the ACI's own manifest). */
  readonly name: string;
  readonly labels: Readonly<Record<string, string>>;
  /** The image ID (`sha512-…` of the uncompressed archive), when the saver knew it. */
  readonly id?: string | undefined;
  readonly descriptor: BundleBlob;
  readonly signatures: readonly BundleSignature[];
}

/** An image of the bundle. */
export type BundleImage = BundleOciImage | BundleAci;

/** A public key that signed something in the bundle. */
export interface BundleKey {
  readonly descriptor: BundleBlob;
  /** Lowercase 40-hex fingerprint of the primary key. */
  readonly fingerprint: string;
  readonly identities: readonly string[];
}

/** The whole description. */
export interface BundleDescription {
  readonly version: 1;
  /** ISO 8601 time of the save. */
  readonly created: string;
  /** What wrote it (`rkt <version>`). */
  readonly creator: string;
  readonly images: readonly BundleImage[];
  readonly keys: readonly BundleKey[];
}

/** The annotation's text: indented JSON, one member per line. Pure. */
export function formatBundleDescription(d: BundleDescription): string {
  return JSON.stringify(d, null, 2);
}

function fail(what: string, path: string, message: string): never {
  throw new RktError(ErrorCode.InvalidArchive, `${what}: bundle description: ${path}: ${message}`);
}

type Obj = Record<string, unknown>;

function obj(
  v: unknown,
  what: string,
  path: string,
  fields: readonly string[],
  required: readonly string[],
): Obj {
  if (typeof v !== "object" || v === null || Array.isArray(v)) fail(what, path, "must be an object");
  const o = v as Obj;
  for (const k of Object.keys(o)) if (!fields.includes(k)) fail(what, `${path}.${k}`, "unknown field");
  for (const k of required) if (o[k] === undefined) fail(what, path, `missing ${k}`);
  return o;
}

function str(v: unknown, what: string, path: string): string {
  if (typeof v !== "string" || v === "") fail(what, path, "must be a non-empty string");
  return v;
}

function optStr(v: unknown, what: string, path: string): string | undefined {
  return v === undefined ? undefined : str(v, what, path);
}

function list(v: unknown, what: string, path: string): unknown[] {
  if (!Array.isArray(v)) fail(what, path, "must be an array");
  return v as unknown[];
}

function blob(v: unknown, what: string, path: string): BundleBlob {
  const o = obj(v, what, path, ["mediaType", "digest", "size"], ["mediaType", "digest", "size"]);
  let digest: Digest;
  try {
    digest = parseDigest(str(o["digest"], what, `${path}.digest`));
  } catch (e) {
    fail(what, `${path}.digest`, e instanceof Error ? e.message : String(e));
  }
  const size = o["size"];
  if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
    fail(what, `${path}.size`, "must be a non-negative integer");
  return { mediaType: str(o["mediaType"], what, `${path}.mediaType`), digest, size };
}

function signature(v: unknown, what: string, path: string): BundleSignature {
  const o = obj(
    v,
    what,
    path,
    ["descriptor", "keyId", "fingerprint", "signs", "reference"],
    ["descriptor", "keyId"],
  );
  const keyId = str(o["keyId"], what, `${path}.keyId`);
  if (!/^[0-9a-f]{16}$/.test(keyId)) fail(what, `${path}.keyId`, "must be 16 lowercase hex digits");
  const fingerprint = optStr(o["fingerprint"], what, `${path}.fingerprint`);
  if (fingerprint !== undefined && !/^[0-9a-f]{40,64}$/.test(fingerprint))
    fail(what, `${path}.fingerprint`, "must be a lowercase hex fingerprint");
  return {
    descriptor: blob(o["descriptor"], what, `${path}.descriptor`),
    keyId,
    fingerprint,
    signs: optStr(o["signs"], what, `${path}.signs`),
    reference: optStr(o["reference"], what, `${path}.reference`),
  };
}

function strings(v: unknown, what: string, path: string): string[] {
  return list(v, what, path).map((s, i) => str(s, what, `${path}[${i}]`));
}

function image(v: unknown, what: string, path: string): BundleImage {
  const kind = (v as Obj | null)?.["kind"];
  const sigs = (o: Obj): BundleSignature[] =>
    list(o["signatures"], what, `${path}.signatures`).map((s, i) =>
      signature(s, what, `${path}.signatures[${i}]`),
    );
  if (kind === "oci") {
    const o = obj(
      v,
      what,
      path,
      ["kind", "name", "descriptor", "platforms", "size", "signatures"],
      ["kind", "name", "descriptor", "size", "signatures"],
    );
    const size = o["size"];
    if (typeof size !== "number" || !Number.isSafeInteger(size) || size < 0)
      fail(what, `${path}.size`, "must be a non-negative integer");
    return {
      kind,
      name: str(o["name"], what, `${path}.name`),
      descriptor: blob(o["descriptor"], what, `${path}.descriptor`),
      platforms:
        o["platforms"] === undefined ? undefined : strings(o["platforms"], what, `${path}.platforms`),
      size,
      signatures: sigs(o),
    };
  }
  if (kind === "aci") {
    const o = obj(
      v,
      what,
      path,
      ["kind", "name", "labels", "id", "descriptor", "signatures"],
      ["kind", "name", "labels", "descriptor", "signatures"],
    );
    const labels = obj(o["labels"], what, `${path}.labels`, Object.keys(o["labels"] ?? {}), []);
    for (const [k, l] of Object.entries(labels)) str(l, what, `${path}.labels.${k}`);
    const id = optStr(o["id"], what, `${path}.id`);
    if (id !== undefined && !/^sha512-[0-9a-f]{64}$/.test(id))
      fail(what, `${path}.id`, "not an ACI image ID");
    return {
      kind,
      name: str(o["name"], what, `${path}.name`),
      labels: labels as Record<string, string>,
      id,
      descriptor: blob(o["descriptor"], what, `${path}.descriptor`),
      signatures: sigs(o),
    };
  }
  fail(what, `${path}.kind`, `must be "oci" or "aci"`);
}

/**
 * Parses the annotation's text strictly (unknown fields, wrong types, bad digests refused):
 * RKT_INVALID_ARCHIVE `<what>: bundle description: <JSONPath>: <problem>`. Pure.
 */
export function parseBundleDescription(text: string, what: string): BundleDescription {
  const r = parseJsonStrict(text);
  if (!r.ok) fail(what, r.issues[0]!.path, r.issues[0]!.message);
  const o = obj(
    r.value,
    what,
    "$",
    ["version", "created", "creator", "images", "keys"],
    ["version", "created", "creator", "images", "keys"],
  );
  if (o["version"] !== 1) fail(what, "$.version", "must be 1 (a newer rkt wrote this bundle)");
  return {
    version: 1,
    created: str(o["created"], what, "$.created"),
    creator: str(o["creator"], what, "$.creator"),
    images: list(o["images"], what, "$.images").map((x, i) => image(x, what, `$.images[${i}]`)),
    keys: list(o["keys"], what, "$.keys").map((k, i) => {
      const p = `$.keys[${i}]`;
      const ko = obj(k, what, p, ["descriptor", "fingerprint", "identities"], ["descriptor", "fingerprint"]);
      const fingerprint = str(ko["fingerprint"], what, `${p}.fingerprint`);
      if (!/^[0-9a-f]{40,64}$/.test(fingerprint))
        fail(what, `${p}.fingerprint`, "must be a lowercase hex fingerprint");
      return {
        descriptor: blob(ko["descriptor"], what, `${p}.descriptor`),
        fingerprint,
        identities: ko["identities"] === undefined ? [] : strings(ko["identities"], what, `${p}.identities`),
      };
    }),
  };
}

/** The bundle description in an index's annotations, or undefined for a plain OCI archive. Pure. */
export function bundleDescriptionOf(
  annotations: Readonly<Record<string, string>> | undefined,
  what: string,
): BundleDescription | undefined {
  const text = annotations?.[bundleAnnotation];
  return text === undefined ? undefined : parseBundleDescription(text, what);
}

/** A blob as a descriptor. Pure. */
export function blobDescriptor(b: BundleBlob): Descriptor {
  return { mediaType: b.mediaType, digest: b.digest, size: b.size };
}

const units = ["B", "KiB", "MiB", "GiB", "TiB"];

function humanSize(n: number): string {
  let v = n;
  let u = 0;
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024;
    u++;
  }
  return u === 0 ? `${n} B` : `${v.toFixed(1)} ${units[u]}`;
}

function short(d: string): string {
  const colon = d.indexOf(":");
  return `${d.slice(0, colon + 1)}${d.slice(colon + 1, colon + 13)}`;
}

/**
 * The description as text for people: one block per image (its signatures indented below it,
 * each with its signer as the bundle names it), then the keys. `fingerprint` formats a key
 * fingerprint for display. Pure.
 */
export function bundleText(
  d: BundleDescription,
  file: string,
  fingerprint: (hex: string) => string = (h) => h.toUpperCase(),
): string {
  const keys = new Map(d.keys.map((k) => [k.fingerprint, k]));
  const signer = (s: BundleSignature): string => {
    if (s.fingerprint === undefined) return `key ID ${s.keyId.toUpperCase()} (no key in the bundle)`;
    const who = keys.get(s.fingerprint)?.identities.join(", ");
    return `${fingerprint(s.fingerprint)}${who === undefined || who === "" ? "" : ` ${who}`}`;
  };
  const lines = [
    `bundle ${file}: ${d.images.length} image(s), ${d.keys.length} key(s), written ${d.created} by ${d.creator}`,
  ];
  for (const img of d.images) {
    lines.push("");
    if (img.kind === "oci") {
      const platforms = img.platforms === undefined ? "" : `, ${img.platforms.join(" ")}`;
      lines.push(`image ${img.name}`, `  ${img.descriptor.digest} (${humanSize(img.size)}${platforms})`);
    } else {
      const labels = Object.entries(img.labels).map(([k, v]) => `,${k}=${v}`);
      lines.push(
        `aci ${img.name}${labels.join("")}`,
        `  ${img.id ?? img.descriptor.digest} (${humanSize(img.descriptor.size)})`,
      );
    }
    if (img.signatures.length === 0) lines.push("  unsigned");
    for (const s of img.signatures) {
      const over = s.signs === undefined ? "" : ` of ${s.reference ?? "?"}@${short(s.signs)}`;
      lines.push(`  signature${over} by ${signer(s)}`);
    }
  }
  if (d.keys.length > 0) lines.push("");
  for (const k of d.keys) {
    lines.push(
      `key ${fingerprint(k.fingerprint)}${k.identities.length > 0 ? ` ${k.identities.join(", ")}` : ""}`,
    );
  }
  return `${lines.join("\n")}\n`;
}
