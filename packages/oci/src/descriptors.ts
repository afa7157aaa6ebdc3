// Small derivations over the model that several packages need.
import { digestOf, type Algorithm, type Digest } from "./digest.js";
import type { Descriptor } from "./schema/descriptor.js";
import type { Index, Manifest } from "./schema/manifest.js";

/**
 * The descriptor of bytes held in memory (a manifest or config about to be written): their digest
 * (sha256 unless asked) and length. Pure.
 */
export function descriptorOf(bytes: Uint8Array, mediaType: string, alg: Algorithm = "sha256"): Descriptor {
  return { mediaType, digest: digestOf(bytes, alg), size: bytes.length };
}

/**
 * The artifact type of a manifest or index as the referrers API reports it: `artifactType`, else
 * (manifests only) `config.mediaType`.
 */
export function artifactTypeOf(doc: Manifest | Index): string | undefined {
  if (doc.artifactType !== undefined) return doc.artifactType;
  return "config" in doc ? doc.config.mediaType : undefined;
}

/**
 * ChainIDs of a layer stack (config.md): `ChainID(L0) = DiffID(L0)`, then
 * `ChainID(L0..n) = sha256(ChainID(L0..n-1) + " " + DiffID(n))`. Element i identifies the
 * filesystem after applying layers 0..i, so snapshots can be shared between images. Pure.
 */
export function chainIds(diffIds: readonly Digest[]): Digest[] {
  const out: Digest[] = [];
  for (const d of diffIds) {
    const prev = out[out.length - 1];
    out.push(prev === undefined ? d : digestOf(`${prev} ${d}`));
  }
  return out;
}
