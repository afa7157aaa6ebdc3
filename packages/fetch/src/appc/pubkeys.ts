// rkt's maybeFetchPubKeys (rkt/image/namefetcher.go): a name fetch with no key trusted for the
// name discovers the publisher's keys (`ac-discovery-pubkeys`) and trusts the https ones for the
// name, when the user said so up front (`--trust-keys-from-https`). rkt could also ask on a
// terminal; here an untrusted name without that flag simply fails verification with the
// `rkt trust` hint.
import { parseAppString } from "@rkt/appc";
import type { KeyStore } from "@rkt/trust";
import { discoverPubkeys, readPubkey } from "../pubkey.js";

/** A key trusted by {@link trustDiscoveredKeys}. */
export interface TrustedDiscoveredKey {
  /** The prefix the key is trusted for: the app's name. */
  readonly prefix: string;
  readonly location: string;
  /** rkt's fingerprint lines (`gpg key fingerprint is: …`, subkeys, `	<identity>`). */
  readonly lines: readonly string[];
  /** The keystore file written. */
  readonly path: string;
}

/**
 * For the app string `app` (`example.com/app:1.0`): when the keystore has no key for its name or
 * a parent prefix, discovers the name's public keys over https (never http: they would be trusted
 * without review) and trusts each for the name. Returns what was trusted (empty when keys already
 * existed). Throws the discovery and key errors (rkt only logged them; the caller decides).
 */
export async function trustDiscoveredKeys(
  keystore: KeyStore,
  app: string,
  o: {
    readonly env?: Readonly<Record<string, string | undefined>> | undefined;
    readonly port?: number | undefined;
    readonly signal?: AbortSignal | undefined;
  } = {},
): Promise<TrustedDiscoveredKey[]> {
  const name = parseAppString(app).name;
  if (await keystore.prefixHasKeys(name)) return [];
  const fetchOptions = { env: o.env, port: o.port, signal: o.signal };
  const { describeKey, parseArmoredKeyring } = await import("@rkt/trust");
  const out: TrustedDiscoveredKey[] = [];
  for (const location of await discoverPubkeys(name, fetchOptions)) {
    const fetched = await readPubkey(location, fetchOptions);
    const parsed = await parseArmoredKeyring(fetched.bytes, location);
    const lines = parsed.keys.flatMap((k) => describeKey(k).lines);
    const path = await keystore.addKey(parsed.armored, { prefix: name }, location);
    out.push({ prefix: name, location, lines, path });
  }
  return out;
}
