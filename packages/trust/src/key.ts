// Public keys as rkt handles them: ASCII-armored keyrings whose first entity names the file
// (`<lowercase 40-hex fingerprint>`), shown to people in gpg's grouped fingerprint format.
import { ErrorCode, RktError } from "@rkt/oci";
import type { Key } from "openpgp";
import { pgp } from "./pgp.js";

/** A parsed public keyring: the first key names it, the armored text is kept verbatim. */
export interface ParsedKeyring {
  /** Lowercase 40-hex v4 fingerprint of the first key's primary key (rkt's file name). */
  readonly fingerprint: string;
  /** Every key in the input, first one first. */
  readonly keys: readonly Key[];
  /** The input text exactly as given (rkt writes the whole armored input). */
  readonly armored: string;
}

/** What `rkt trust` prints about a key. */
export interface KeyDescription {
  /** Lowercase hex, as in file names. */
  readonly fingerprint: string;
  /** gpg's display form: `8B86 DE38 890D DB72 9186  7B02 5210 BD88 8818 2190`. */
  readonly displayFingerprint: string;
  /** Display-form fingerprints of the subkeys, in key order. */
  readonly subkeys: readonly string[];
  /** User IDs (`Name (comment) <email>`), in key order. */
  readonly identities: readonly string[];
  /**
   * rkt's lines, without trailing newlines: `gpg key fingerprint is: …`, `    Subkey fingerprint: …`
   * per subkey, then `\t<identity>` per identity.
   */
  readonly lines: readonly string[];
}

const armorHeader = /-----BEGIN PGP PUBLIC KEY BLOCK-----/;

/**
 * Parses an ASCII-armored public keyring as `rkt trust` accepts it (`openpgp.ReadArmoredKeyRing`).
 * Binary keys, private-key blocks and garbage are refused with RKT_INVALID_ARGUMENT
 * `error reading key: <source>: <why>`. `source` names the input in the message (a path or URL).
 * Pure apart from loading openpgp.
 */
export async function parseArmoredKeyring(
  input: string | Uint8Array,
  source: string,
): Promise<ParsedKeyring> {
  const text = typeof input === "string" ? input : decodeUtf8(input);
  if (text === undefined || !armorHeader.test(text)) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `error reading key: ${source}: not an ASCII-armored OpenPGP public key block`,
    );
  }
  const openpgp = await pgp();
  let keys: Key[];
  try {
    keys = await openpgp.readKeys({ armoredKeys: text });
  } catch (e) {
    throw new RktError(ErrorCode.InvalidArgument, `error reading key: ${source}: ${errorText(e)}`, {
      cause: e,
    });
  }
  const first = keys[0];
  if (first === undefined) {
    throw new RktError(ErrorCode.InvalidArgument, `error reading key: ${source}: no key in the input`);
  }
  if (keys.some((k) => k.isPrivate())) {
    throw new RktError(
      ErrorCode.InvalidArgument,
      `error reading key: ${source}: contains a private key; give the public key (gpg --export --armor)`,
    );
  }
  return { fingerprint: first.getFingerprint().toLowerCase(), keys, armored: text };
}

/**
 * Parses public keys in either encoding (armored or binary, one or many), as policy.json
 * `keyPath`/`keyData` files are written by `gpg --export [--armor]`. Throws RKT_INVALID_ARGUMENT
 * naming `source`.
 */
export async function parseAnyKeyring(input: Uint8Array, source: string): Promise<readonly Key[]> {
  const openpgp = await pgp();
  const text = decodeUtf8(input);
  try {
    const keys =
      text !== undefined && armorHeader.test(text)
        ? await openpgp.readKeys({ armoredKeys: text })
        : await openpgp.readKeys({ binaryKeys: input });
    if (keys.length === 0) throw new Error("no key in the input");
    return keys.map((k) => (k.isPrivate() ? k.toPublic() : k));
  } catch (e) {
    throw new RktError(ErrorCode.InvalidArgument, `error reading key: ${source}: ${errorText(e)}`, {
      cause: e,
    });
  }
}

/**
 * Formats a hex fingerprint as gpg and rkt print it: uppercase, groups of four, two spaces in the
 * middle of a v4 (40-hex) fingerprint. Pure.
 */
export function formatFingerprint(hex: string): string {
  const groups = hex.toUpperCase().match(/.{1,4}/g) ?? [];
  const half = Math.ceil(groups.length / 2);
  return `${groups.slice(0, half).join(" ")}  ${groups.slice(half).join(" ")}`.trim();
}

/** Describes one key the way `rkt trust` prints it before the review prompt. Pure. */
export function describeKey(key: Key): KeyDescription {
  const fingerprint = key.getFingerprint().toLowerCase();
  const displayFingerprint = formatFingerprint(fingerprint);
  const subkeys = key.subkeys.map((s) => formatFingerprint(s.getFingerprint()));
  const identities = key.getUserIDs();
  return {
    fingerprint,
    displayFingerprint,
    subkeys,
    identities,
    lines: [
      `gpg key fingerprint is: ${displayFingerprint}`,
      ...subkeys.map((s) => `    Subkey fingerprint: ${s}`),
      ...identities.map((i) => `\t${i}`),
    ],
  };
}

/** The ASCII-armored public part of `key` (what a keystore file or a bundle carries). */
export function armoredPublicKey(key: Key): string {
  return (key.isPrivate() ? key.toPublic() : key).armor();
}

/** True when `keyId` (16 hex, any case) is `key`'s primary key or one of its subkeys. Pure. */
export function keyHasKeyId(key: Key, keyId: string): boolean {
  const want = keyId.toLowerCase();
  return key.getKeys().some((k) => k.getKeyID().toHex().toLowerCase() === want);
}

function decodeUtf8(b: Uint8Array): string | undefined {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch {
    return undefined;
  }
}

/** The message of an unknown thrown value, first letter lowercased to read as one line after a colon. */
export function errorText(e: unknown): string {
  const m = e instanceof Error ? e.message : String(e);
  // "Signed digest did not match" reads better after a colon as "signed digest…"; "ENOENT" stays.
  return /^[A-Z][a-z]/.test(m) ? m.charAt(0).toLowerCase() + m.slice(1) : m;
}
