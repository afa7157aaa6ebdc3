// Conversions inside the store, cached: the ACIs converted from a stored OCI image are recorded
// against the image's manifest digest, so converting an unchanged image again (`rkt fetch
// --convert=aci` of a tag that did not move, `rkt image convert` twice) imports nothing and
// returns the stored ACIs. rkt re-converted on every fetch.
import type { Readable } from "node:stream";
import type { BlobProgress } from "@rkt/oci";
import { getImage, getRemote, importAci, recordRemote, type LocalStore } from "@rkt/store";
import { convertImage } from "./convert.js";
import { storeImageInput } from "./sources.js";

/** Options of {@link convertStoredImage}. */
export interface ConvertStoredOptions {
  /** One squashed ACI (default) or one per layer with dependencies. */
  squash?: boolean | undefined;
  signal?: AbortSignal | undefined;
  /** Each layer's bytes as it is converted. */
  onProgress?: ((p: BlobProgress) => void) | undefined;
}

/** What {@link convertStoredImage} produced. */
export interface StoredConversion {
  /** The ACI to run: the squashed one, or the top layer's (its dependencies name the rest). */
  readonly id: string;
  /** Every ACI of the conversion, base first (only `id` when it came from the cache). */
  readonly ids: readonly string[];
  /** True when the cache answered and nothing was converted. */
  readonly cached: boolean;
}

// The cache lives in the store's remotes table under a URL no transport uses.
function cacheKey(id: string, squash: boolean): string {
  return `docker2aci:${squash ? "squash" : "layers"}:${id}`;
}

function stillStored(store: LocalStore, id: string): boolean {
  try {
    return getImage(store, id).kind === "aci";
  } catch {
    return false;
  }
}

/**
 * The ACIs of the stored OCI image `id`, converted by docker2aci's rules and imported into the
 * store (uncompressed, as the store keeps archives), or found from an earlier conversion of the
 * same manifest. RKT_NOT_FOUND; RKT_INVALID_ARGUMENT for an ACI.
 */
export async function convertStoredImage(
  store: LocalStore,
  id: string,
  o: ConvertStoredOptions = {},
): Promise<StoredConversion> {
  const squash = o.squash ?? true;
  const key = cacheKey(id, squash);
  const hit = getRemote(store, key);
  if (hit !== undefined && stillStored(store, hit.imageId))
    return { id: hit.imageId, ids: [hit.imageId], cached: true };
  const input = await storeImageInput(store, id);
  const ids: string[] = [];
  await convertImage(
    input,
    async (t, data: Readable) => {
      ids.push((await importAci(store, data, { what: t.fileName, signal: o.signal })).id);
    },
    { squash, compression: "none", signal: o.signal, onProgress: o.onProgress },
  );
  const top = ids[ids.length - 1]!;
  recordRemote(store, { url: key }, top, id, Date.now());
  return { id: top, ids, cached: false };
}
